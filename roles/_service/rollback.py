"""Config files for a service that has no offline checker: start on the new files, roll back if not ready.

Some components (Grafana) cannot check a config without running it. For them
`guarded_files` replaces the building block's `ConfigFile.validate`: it keeps
the previous files, swaps in the new ones together, restarts the unit and polls
its readiness URL; if the service does not answer in time it puts the previous
files back (or removes files that did not exist), restarts again and fails the
deploy, so a bad config never stays live. Before the unit exists (first
install) the files are only put in place; the first start's readiness check
then fails the deploy on a bad config.

A file that can be checked without the service (a certificate and its key, with
openssl) carries its own `validate`: every staged file's check runs before any
file is swapped in, and one refusal removes the staged files and leaves the live
ones, and the running service, untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

from roles._service.operations import _script
from roles._service.quoting import refuse_control, sh_quote


@dataclass(frozen=True)
class GuardedFile:
    dest: str
    content: str
    user: str = "root"
    group: str = "root"
    mode: str = "0640"
    # A shell check of the staged copy, `{path}` its quoted path, written in code (never from settings);
    # run on the host before any file of the batch is swapped in.
    validate: str | None = None


def check_script(staged: list[GuardedFile]) -> list[str]:
    """Shell lines: run each staged file's `validate`; on the first refusal remove every staged file of the
    batch and fail, so nothing is swapped in and nothing restarts."""
    q = sh_quote
    for guarded in staged:
        refuse_control(guarded.dest, "guarded file")
    drop = " ".join(q(g.dest + ".staged") for g in staged)
    lines = []
    for guarded in staged:
        if not guarded.validate:
            continue
        check = guarded.validate.replace("{path}", q(guarded.dest + ".staged"))
        lines += [
            f"if ! out=$({{ {check}; }} 2>&1); then",  # the whole check's output, for the message
            f"  rm -f {drop}",
            f"  printf 'refused %s: its check failed; nothing was swapped in, the live files and the service are unchanged\\n%s\\n' "
            f"{q(guarded.dest)} \"$out\" >&2",
            "  exit 1",
            "fi",
        ]
    return lines


def swap_script(
    dests: list[str], unit: str, ready_url: str, timeout_seconds: int, unit_dir: str = "/etc/systemd/system",
    curl_args: tuple[str, ...] = (),
) -> list[str]:
    """Shell lines: keep the previous files, swap in the staged ones, restart, poll, roll back on failure.

    `unit_dir` is where the unit file must exist for a restart (tests point it elsewhere).
    Every path, the unit and the URL are one quoted shell word each.
    """
    q = sh_quote
    for value in (*dests, unit, ready_url, unit_dir, *curl_args):
        refuse_control(value, "guarded file")
    options = "".join(f"{q(arg)} " for arg in curl_args)  # e.g. --cacert for an https ready URL
    lines = []
    for dest in dests:
        lines += [
            f"if [ -e {q(dest)} ]; then cp -p {q(dest)} {q(dest + '.previous')}; else rm -f {q(dest + '.previous')}; fi",
        ]
    lines += [f"mv -f {q(dest + '.staged')} {q(dest)}" for dest in dests]
    restore = []
    for dest in dests:
        restore.append(
            f"  if [ -e {q(dest + '.previous')} ]; then mv -f {q(dest + '.previous')} {q(dest)}; else rm -f {q(dest)}; fi"
        )
    lines += [
        f"if [ -e {q(unit_dir + '/' + unit)} ]; then",
        f"  systemctl restart {q(unit)} || true",
        "  ready=no",
        f"  for i in $(seq {int(timeout_seconds)}); do",
        f"    if curl -fsS -o /dev/null {options}{q(ready_url)}; then ready=yes; break; fi",
        "    sleep 1",
        "  done",
        '  if [ "$ready" != yes ]; then',
        *["  " + line for line in restore],
        f"    systemctl restart {q(unit)} || true",
        f"    echo {q(f'{unit} did not answer {ready_url} within {timeout_seconds}s on the new config; the previous files are back in place and the service was restarted on them. Changed: ' + ' '.join(dests))} >&2",
        f"    journalctl -u {q(unit)} -n 30 --no-pager >&2 || true",
        "    exit 1",
        "  fi",
        "fi",
        *[f"rm -f {q(dest + '.previous')}" for dest in dests],
    ]
    return lines


@operation()
def guarded_files(files: tuple[GuardedFile, ...], unit: str, ready_url: str, timeout_seconds: int = 90,
                  curl_args: tuple[str, ...] = ()):
    """
    Replace a service's config files together and keep them only if the service comes up on them.

    + files: the desired files (content rendered on the controller; never printed); a file's
      `validate` checks its staged copy before any file is swapped in
    + unit: the systemd unit, e.g. ``grafana.service``
    + ready_url: polled with curl after the restart
    + timeout_seconds: how long the service gets to answer
    + curl_args: curl's options for an https ready_url (the CA to verify it with)

    Files whose content is unchanged only get their owner and mode fixed; when
    none changed, nothing restarts.
    """
    changed = []
    for guarded in files:
        desired = hashlib.sha256(guarded.content.encode()).hexdigest()
        if host.get_fact(Sha256File, path=guarded.dest) != desired:
            changed.append(guarded)
            continue
        info = host.get_fact(File, path=guarded.dest) or {}
        if info.get("user") != guarded.user or info.get("group") != guarded.group:
            yield StringCommand("chown", QuoteString(f"{guarded.user}:{guarded.group}"), QuoteString(guarded.dest))
        if str(info.get("mode", "")).zfill(4) != guarded.mode.zfill(4):
            yield StringCommand("chmod", QuoteString(guarded.mode), QuoteString(guarded.dest))
    if not changed:
        return
    for guarded in changed:
        staged = f"{guarded.dest}.staged"
        yield FileUploadCommand(StringIO(guarded.content), staged, remote_temp_filename=host.get_temp_filename(staged))
        yield StringCommand("chown", QuoteString(f"{guarded.user}:{guarded.group}"), QuoteString(staged))
        yield StringCommand("chmod", QuoteString(guarded.mode), QuoteString(staged))
    yield _script(check_script(changed) + swap_script([g.dest for g in changed], unit, ready_url, timeout_seconds,
                                                      curl_args=tuple(curl_args)))
