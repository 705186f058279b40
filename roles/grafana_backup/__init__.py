"""The Grafana backup job on the Grafana host: export to git daily, restore on demand.

The job (files/grafana_backup/sentinel_grafana_backup.py) runs from cron as the
system user `grafana-backup` with a fixed environment (`env -i`), its output in the
journal (`journalctl -t sentinel-grafana-backup`). Why cron and not a systemd timer:
the operators asked for cron, the hosts already run it (node_exporter watches
cron.service), and the stale-backup alert watches the outcome, not the scheduler;
a timer's extras (Persistent=, sandboxing) would not change what the alert sees.

Files on the host:
- /opt/sentinel-grafana-backup/{venv,sentinel_grafana_backup.py}: root, 0755;
- /etc/grafana-backup/config.json (rendered from the settings model), deploy_key
  (secret) and, without the Grafana role, token (secret): 0640 root:grafana-backup.
  ssh accepts a group-readable key because the user running it does not own it;
- /etc/grafana-backup/known_hosts: the git host's pinned keys, 0644;
- /var/lib/grafana-backup/repo: the git working copy, owned by grafana-backup;
- <node_exporter textfile dir>/sentinel_grafana_backup.prom, written by the job on success;
  sentinel_grafana_backup_last_run.prom, written by the job after every run (its outcome);
  sentinel_grafana_backup_installed.prom, written once by the role (when the job was installed:
  what "stale" is measured from while the job has never succeeded).

The job runs once at converge on a host where it has never run (no last-run file), after
every role (Grafana and its token included, see deploy.py), so a fresh converge passes its
own smoke tests; a failure there does not fail the converge: the alert reports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory, File
from pyinfra.operations import apt, files, server

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roles._context import HostContext

from roles._service.operations import validated_file
from roles._service.quoting import sh_quote
from roles.grafana_backup.settings import GrafanaBackupSettings

SOURCE = Path(__file__).resolve().parents[2] / "files" / "grafana_backup"
USER = "grafana-backup"
HOME = "/var/lib/grafana-backup"
CONFIG_DIR = "/etc/grafana-backup"
CONFIG = f"{CONFIG_DIR}/config.json"
DEPLOY_KEY = f"{CONFIG_DIR}/deploy_key"
PINNED_KNOWN_HOSTS = f"{CONFIG_DIR}/known_hosts"
TOFU_KNOWN_HOSTS = f"{HOME}/known_hosts"  # lab only: written by ssh itself (accept-new)
INSTALL_DIR = "/opt/sentinel-grafana-backup"
PROGRAM = f"{INSTALL_DIR}/sentinel_grafana_backup.py"
PYTHON = f"{INSTALL_DIR}/venv/bin/python"
METRIC_FILE_NAME = "sentinel_grafana_backup.prom"
RUN_METRIC_FILE_NAME = "sentinel_grafana_backup_last_run.prom"  # the job's RUN_METRIC_FILE_NAME
INSTALLED_METRIC_FILE_NAME = "sentinel_grafana_backup_installed.prom"
INSTALLED_METRIC = "sentinel_grafana_backup_installed_timestamp_seconds"
# A first run that hangs (git over SSH, Grafana) must not hold the converge for ever.
FIRST_RUN_TIMEOUT_SECONDS = 900
CRON_NAME = "sentinel-grafana-backup"
LOG_TAG = "sentinel-grafana-backup"
# The whole environment of a run: cron's own differs between distributions, a shell's more so.
FIXED_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", f"HOME={HOME}", "LANG=C.UTF-8")


def known_hosts_file(settings: GrafanaBackupSettings) -> str:
    return TOFU_KNOWN_HOSTS if settings.trust_on_first_use else PINNED_KNOWN_HOSTS


CA_FILE = f"{CONFIG_DIR}/ca.crt"  # the environment CA: Grafana's https certificate chains to it (unless public)


def token_expiry_seconds(expires) -> int:
    """grafana_backup.token_expires (a day) as the Unix time it ends: 00:00 UTC of that day (the earliest reading)."""
    import datetime as dt

    return int(dt.datetime(expires.year, expires.month, expires.day, tzinfo=dt.timezone.utc).timestamp())


def job_config(settings: GrafanaBackupSettings, textfile_dir: str, grafana_url: str = "", public_name: str | None = None) -> dict:
    """The job's config.json as a dict (the job's `Config` fields); `grafana_url` when the setting is unset.

    `public_name`: the name Grafana's public certificate is verified for (roles/grafana/config.py), None
    while Grafana serves the environment CA's certificate. With it the job trusts the system's store (a
    public CA issued it) and checks that name, while it still connects to grafana_url (the topology's
    address, which the public certificate need not name)."""
    return {
        "grafana_url": settings.grafana_url or grafana_url,
        "token_file": settings.token_file,
        "repo_dir": settings.repo_dir,
        "remote_url": settings.remote_url,
        "branch": settings.branch,
        "ssh_key_file": DEPLOY_KEY,
        "known_hosts_file": known_hosts_file(settings),
        "strict_host_key_checking": "accept-new" if settings.trust_on_first_use else "yes",
        "textfile_path": f"{textfile_dir}/{METRIC_FILE_NAME}",
        "git_author_name": settings.git_author_name,
        "git_author_email": settings.git_author_email,
        "timeout_seconds": settings.timeout_seconds,
        "ca_file": "" if public_name else CA_FILE,  # "": the system's trust store
        "tls_server_name": public_name or "",
        "token_expiry_file": settings.token_expiry_file,
    }


def render_config(settings: GrafanaBackupSettings, textfile_dir: str, grafana_url: str = "", public_name: str | None = None) -> str:
    return json.dumps(job_config(settings, textfile_dir, grafana_url, public_name), indent=2) + "\n"


def job_command(subcommand: str = "backup") -> str:
    """The job as cron runs it: fixed environment, output to the journal, the job's exit code."""
    return " ".join(
        ["systemd-cat", "-t", LOG_TAG, "env", "-i", *FIXED_ENV, PYTHON, PROGRAM, "--config", CONFIG, subcommand]
    )


def installed_metric_command(path: str) -> str:
    """Write the install-time metric from the host's clock (Prometheus compares it with its own time()),
    atomically: a temporary file beside it, then rename, as the job writes its own."""
    directory, name = str(Path(path).parent), Path(path).name
    return (
        f"t=$(mktemp {sh_quote(directory)}/.{name}.XXXXXX) && "
        f"printf '# HELP {INSTALLED_METRIC} Unix time the Grafana backup job was installed on this host.\\n"
        f"# TYPE {INSTALLED_METRIC} gauge\\n{INSTALLED_METRIC} %s\\n' \"$(date +%s)\" > \"$t\" && "
        f"chmod 0644 \"$t\" && mv \"$t\" {sh_quote(path)}"
    )


def first_run_command() -> str:
    """The job once, as cron runs it (its user, its environment, the journal); its failure does not fail the converge."""
    return (
        f"timeout {FIRST_RUN_TIMEOUT_SECONDS} runuser -u {USER} -- {job_command()} || "
        f"echo 'the first Grafana backup run failed (exit '$?'): journalctl -t {LOG_TAG}; GrafanaBackupFailing reports it'"
    )


def known_hosts_content(settings: GrafanaBackupSettings) -> str:
    return "".join(f"{line}\n" for line in settings.known_hosts)


def venv_build_command(settings: GrafanaBackupSettings, artifact_base_url: str) -> str:
    """Build a fresh venv from {path} (the staged requirements file), then swap it in."""
    if settings.wheels_from_mirror:
        mirror_host = urlsplit(artifact_base_url).hostname
        source = f"--no-index --find-links {sh_quote(artifact_base_url + '/wheels/')} --trusted-host {sh_quote(mirror_host or '')}"
        pip_env = "PIP_CONFIG_FILE=/dev/null "
    else:
        source, pip_env = "", ""  # PyPI through the host's own pip configuration
    return (
        f"rm -rf {INSTALL_DIR}/venv.new && python3 -m venv {INSTALL_DIR}/venv.new && "
        f"{pip_env}{INSTALL_DIR}/venv.new/bin/pip install --quiet --disable-pip-version-check {source} -r {{path}} && "
        f"rm -rf {INSTALL_DIR}/venv && mv {INSTALL_DIR}/venv.new {INSTALL_DIR}/venv"
    )


def secret_file(secrets: Mapping[str, str], name: str) -> str:
    """A secret's file content: the value preflight resolved and checked, one final newline."""
    return secrets[name].rstrip("\n") + "\n"


@deploy("Grafana backup")
def grafana_backup(settings: GrafanaBackupSettings, ctx: HostContext):
    """
    Install the Grafana backup job, its secrets, its git working copy and its cron entry.

    + settings: the host's `grafana_backup` settings (must be enabled)
    + ctx: the host context: the run's secrets (the deploy key and, with `write_token`, the
      token), the artifact mirror (`wheels_from_mirror`), node_exporter's textfile directory
      (the job's metrics; node_exporter's group may write there), Grafana's URL from the
      topology when `grafana_url` is unset
    """
    from roles.node_exporter import TEXTFILE_GROUP as textfile_group

    secrets, artifact_base_url = ctx.secrets, ctx.artifact_base_url
    textfile_dir = ctx.settings.node_exporter.textfile_dir
    from roles._tls import ca_pem
    from roles.grafana.config import public_name

    # Grafana serves https only, with the environment CA's certificate or the operator's public one. Every
    # Grafana of the environment is verified by one name (preflight), so this host's settings give it.
    grafana_url = "" if settings.grafana_url else ctx.topology.url("grafana.http", ctx.name, scheme="https")
    public = public_name(ctx.settings.grafana, ctx.address)
    apt.packages(name="grafana backup: git, ssh client, venv", packages=["git", "openssh-client", "python3-venv"],
                 update=True, cache_time=24 * 3600)
    server.group(name="grafana backup: system group", group=USER, system=True)
    server.user(
        name="grafana backup: system user",
        user=USER,
        group=USER,
        groups=[textfile_group],
        system=True,
        shell="/usr/sbin/nologin",
        home=HOME,
        create_home=False,
    )
    files.directory(name="grafana backup: home", path=HOME, user=USER, group=USER, mode="0750")

    files.directory(name="grafana backup: install dir", path=INSTALL_DIR, user="root", group="root", mode="0755")
    # The requirements file lands only once a fresh venv has installed it, so a failed
    # install is retried on the next converge.
    validated_file(
        name="grafana backup: virtualenv with grafana-client",
        dest=f"{INSTALL_DIR}/requirements.txt",
        content=(SOURCE / "requirements.txt").read_text(),
        validate=venv_build_command(settings, artifact_base_url),
        mode="0644",
    )
    validated_file(
        name="grafana backup: the job",
        dest=PROGRAM,
        content=(SOURCE / "sentinel_grafana_backup.py").read_text(),
        validate=f"{PYTHON} -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' {{path}}",
        mode="0755",
    )

    files.directory(name="grafana backup: config dir", path=CONFIG_DIR, user="root", group=USER, mode="0750")
    validated_file(
        name="grafana backup: config",
        dest=CONFIG,
        content=render_config(settings, textfile_dir, grafana_url, public),
        validate=f"{PYTHON} -c 'import json, sys; json.load(open(sys.argv[1]))' {{path}}",
        user="root",
        group=USER,
        mode="0640",
    )
    validated_file(
        name="grafana backup: deploy key",
        dest=DEPLOY_KEY,
        content=secret_file(secrets, settings.deploy_key_secret),
        # ssh-keygen refuses its own user's key when group-readable (root runs this, the
        # job runs as grafana-backup, which ssh allows): check a private 0600 copy.
        validate='{ k=$(mktemp) && cat {path} > "$k" && ssh-keygen -y -f "$k" >/dev/null; r=$?; rm -f "$k"; [ $r -eq 0 ]; }',
        user="root",
        group=USER,
        mode="0640",
    )
    if public:
        # The job verifies Grafana's public certificate with the system's trust store: no CA file to keep current.
        files.file(name="grafana backup: no environment CA file (Grafana serves the public certificate)", path=CA_FILE, present=False)
    else:
        validated_file(
            name="grafana backup: the environment CA (Grafana's https)",
            dest=CA_FILE,
            content=ca_pem(ctx),
            validate="openssl x509 -noout -in {path}",
            mode="0644",
        )
    if settings.write_token:
        # Only where no Grafana role writes the token (the lab's stand-in), with its expiry as the operator gave it.
        validated_file(
            name="grafana backup: service-account token",
            dest=settings.token_file,
            content=secret_file(secrets, settings.token_secret),
            user="root",
            group=USER,
            mode="0640",
        )
        validated_file(
            name="grafana backup: the token's expiry",
            dest=settings.token_expiry_file,
            content=f"{token_expiry_seconds(settings.token_expires)}\n",
            user="root",
            group=USER,
            mode="0640",
        )
    if settings.trust_on_first_use:
        files.file(name="grafana backup: no pinned known_hosts (lab: first use)", path=PINNED_KNOWN_HOSTS, present=False)
    else:
        validated_file(
            name="grafana backup: pinned git host keys",
            dest=PINNED_KNOWN_HOSTS,
            content=known_hosts_content(settings),
            mode="0644",
        )

    repo_parent = str(Path(settings.repo_dir).parent)
    if repo_parent != HOME:
        files.directory(name="grafana backup: repo parent", path=repo_parent, user=USER, group=USER, mode="0750")
    if not host.get_fact(Directory, path=f"{settings.repo_dir}/.git"):
        as_user = f"runuser -u {USER} --"
        server.shell(
            name="grafana backup: git working copy",
            commands=[
                f"{as_user} git init -q -b {sh_quote(settings.branch)} {sh_quote(settings.repo_dir)}",
                f"{as_user} git -C {sh_quote(settings.repo_dir)} remote add origin {sh_quote(settings.remote_url)}",
            ],
        )

    schedule = settings.schedule
    server.crontab(
        name="grafana backup: cron entry",
        command=job_command(),
        user=USER,
        cron_name=CRON_NAME,
        minute=schedule.minute,
        hour=schedule.hour,
        day_of_month=schedule.day_of_month,
        month=schedule.month,
        day_of_week=schedule.day_of_week,
    )
    installed_metric(f"{textfile_dir}/{INSTALLED_METRIC_FILE_NAME}")


def installed_metric(path: str) -> None:
    """The install time, written once: while the job has never succeeded, the stale alert measures from it
    (a job broken from its first day alerts like a stale one). Later converges leave it alone, so
    the converge stays idempotent and the time stays the first install's."""
    if not host.get_fact(File, path=path):
        server.shell(name="grafana backup: install time for the stale alert", commands=[installed_metric_command(path)])


@deploy("Grafana backup: first run")
def grafana_backup_first_run(settings: GrafanaBackupSettings, ctx: HostContext):
    """
    Run the job once where it has NEVER RUN, so that a fresh converge passes its own smoke tests.

    deploy.py calls it after every role: the job reads Grafana, which the grafana role installs
    and gives a token after this role. "Never run" is the absence of the last-run textfile,
    which the job writes after every run whatever its outcome: a second converge therefore
    changes nothing even when that first run failed (idempotence; GrafanaBackupFailing reports
    the failure, and cron retries at its schedule). Only a job that cannot even read its config
    writes no record: such a host runs it again at each converge until fixed.

    + settings: the host's `grafana_backup` settings (enabled)
    + ctx: the host context: node_exporter's textfile directory
    """
    if host.get_fact(File, path=f"{ctx.settings.node_exporter.textfile_dir}/{RUN_METRIC_FILE_NAME}"):
        return
    server.shell(name="grafana backup: first run (the job has never run here)", commands=[first_run_command()])
