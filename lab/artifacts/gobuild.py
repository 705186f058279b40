"""Building Go binaries with nothing but the Go module proxy.

Two recipes, chosen from the target's own go.mod:
- direct: `go install pkg@version`. The target's go.mod is then the main
  module, so the build list is exactly upstream's. Go refuses this when that
  go.mod has any replace or exclude directive.
- wrapper: a throwaway main module that requires the target and carries the
  target's replace and exclude lines (generated from `go mod edit -json`), so
  minimal version selection lands on the same build list.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .recipes import GOARCH, GOOS, BuilderRecipe, GoRecipe

# Proxy-side failures that a retry normally fixes (the proxy fetching an
# uncached module times out on the first request), as opposed to a module or
# version that does not exist.
_TRANSIENT = re.compile(
    r"timed out|i/o timeout|handshake timeout|connection reset|connection refused|unexpected EOF"
    r"|TLS handshake|temporary failure|no such host|50[234] |Bad Gateway|Service Unavailable",
    re.IGNORECASE,
)
ATTEMPTS = 4
FIRST_DELAY = 5.0  # seconds; tripled on each retry


class GoError(RuntimeError):
    pass


def go_binary() -> str:
    found = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(found).exists():
        raise GoError("no go command found (expected /usr/local/go/bin/go)")
    return found


def environment(build_dir: Path) -> dict[str, str]:
    """The environment for every go command the builder runs."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(build_dir / "gomodcache"),
        GOCACHE=str(build_dir / "gocache"),
        # auto: a module whose go line is newer than the local Go makes the go
        # command fetch that toolchain as a module from the proxy; local fails.
        GOTOOLCHAIN="auto",
        CGO_ENABLED="0",
        GOOS=GOOS,
        GOARCH=GOARCH,
        # modcacherw: the cache can be deleted with plain rm -rf.
        GOFLAGS="-buildvcs=false -modcacherw",
        GOWORK="off",
        GOPROXY=proxy_without_direct(),
    )
    env.pop("GOBIN", None)  # set per command where binaries should land
    return env


def proxy_without_direct() -> str:
    """The machine's GOPROXY minus `direct` and `off`.

    Go's built-in default ends in ",direct"; a direct fetch would go to GitHub,
    which the lab cannot reach, and turn a proxy hiccup into a confusing git
    error. Only the proxy list is kept.
    """
    raw = os.environ.get("GOPROXY")
    if raw is None:
        raw = subprocess.run(
            [go_binary(), "env", "GOPROXY"], capture_output=True, text=True, check=True,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        ).stdout.strip()
    proxies = [p for p in re.split(r"[,|]", raw) if p and p not in ("direct", "off")]
    if not proxies:
        raise GoError(f"GOPROXY={raw!r} names no module proxy")
    return ",".join(proxies)


def run(args: list[str], env: dict, cwd: Path | None = None, log=None) -> str:
    """Run one go command; retry with backoff on transient proxy failures."""
    cmd = [go_binary(), *args]
    delay = FIRST_DELAY
    for attempt in range(1, ATTEMPTS + 1):
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout
        output = (proc.stderr + proc.stdout).strip()
        if attempt < ATTEMPTS and _TRANSIENT.search(output):
            _log(log, f"  go {args[0]} failed transiently (attempt {attempt}), retrying in {delay:.0f}s:"
                      f" {output.splitlines()[-1] if output else ''}")
            time.sleep(delay)
            delay *= 3
            continue
        raise GoError(f"go {' '.join(args)} failed (exit {proc.returncode}):\n{output[-6000:]}")
    raise AssertionError("unreachable")


def local_version(env: dict, cwd: Path) -> str:
    return run(["env", "GOVERSION"], env, cwd=cwd).strip()


def download(module: str, version: str, env: dict, cwd: Path, log=None) -> dict:
    """`go mod download -json`, plus the publication time from the .info file."""
    info = json.loads(run(["mod", "download", "-json", f"{module}@{version}"], env, cwd=cwd, log=log))
    if info.get("Error"):
        raise GoError(f"{module}@{version}: {info['Error']}")
    info["Time"] = json.loads(Path(info["Info"]).read_text())["Time"]
    return info


def directives(gomod: Path, env: dict, cwd: Path) -> dict:
    """The target go.mod's go line, replace and exclude lines, as go reads them."""
    parsed = json.loads(run(["mod", "edit", "-json", str(gomod)], env, cwd=cwd))
    replaces = []
    for r in parsed.get("Replace") or []:
        old, new = r["Old"], r["New"]
        if not new.get("Version"):
            # A local path replace points into the repository; the nested module
            # it names is not in the module zip and would need a same-commit
            # pseudo-version, which the proxy alone cannot tell us.
            raise GoError(f"{gomod}: local replace {old['Path']} => {new['Path']} is not supported")
        lhs = old["Path"] + (f"@{old['Version']}" if old.get("Version") else "")
        replaces.append(f"{lhs}={new['Path']}@{new['Version']}")
    excludes = [f"{e['Path']}@{e['Version']}" for e in parsed.get("Exclude") or []]
    return {"go": parsed.get("Go"), "replace": replaces, "exclude": excludes}


def build(
    name: str,
    recipe: GoRecipe,
    module_version: str,
    ldflags: list[str],
    out_dir: Path,
    work_dir: Path,
    gomod_directives: dict,
    env: dict,
    log=None,
) -> dict:
    """Build every binary of `recipe` into `out_dir`; say which recipe was used."""
    out_dir.mkdir(parents=True, exist_ok=True)
    packages = recipe.packages()
    flags = ["-trimpath", "-ldflags=" + " ".join(ldflags)]
    if recipe.tags:
        flags.append("-tags=" + ",".join(recipe.tags))
    targets = [f"{pkg}@{module_version}" for pkg in packages.values()]
    wrapper = bool(gomod_directives["replace"] or gomod_directives["exclude"])

    if not wrapper:
        _log(log, f"  go install {' '.join(targets)}")
        run(["install", *flags, *targets], {**env, "GOBIN": str(out_dir)}, cwd=work_dir, log=log)
        for binary, pkg in packages.items():
            produced = out_dir / pkg.rsplit("/", 1)[-1]
            if produced != out_dir / binary:
                produced.rename(out_dir / binary)
    else:
        wdir = work_dir / "wrappers" / name
        shutil.rmtree(wdir, ignore_errors=True)
        wdir.mkdir(parents=True)
        run(["mod", "init", f"sentinel-lab/build/{name}"], env, cwd=wdir)
        edits = [f"-require={recipe.module}@{module_version}"]
        edits += [f"-replace={r}" for r in gomod_directives["replace"]]
        edits += [f"-exclude={e}" for e in gomod_directives["exclude"]]
        run(["mod", "edit", *edits], env, cwd=wdir)
        _log(log, f"  go get {' '.join(targets)} (wrapper module {wdir})")
        run(["get", *targets], env, cwd=wdir, log=log)
        for binary, pkg in packages.items():
            _log(log, f"  go build -o {binary} {pkg}")
            run(["build", *flags, "-o", str(out_dir / binary), pkg], env, cwd=wdir, log=log)

    toolchains = {}
    for binary in packages:
        path = out_dir / binary
        if not path.is_file():
            raise GoError(f"{name}: build produced no {binary}")
        toolchains[binary] = run(["version", str(path)], env, cwd=work_dir).split(":", 1)[1].strip()
    return {"recipe": "wrapper" if wrapper else "direct", "toolchains": toolchains}


def build_distribution(
    name: str,
    recipe: BuilderRecipe,
    version: str,
    out_dir: Path,
    work_dir: Path,
    env: dict,
    log=None,
) -> dict:
    """Build a collector distribution with the upstream builder (ocb).

    The builder comes from the module proxy at the manifest's core version and
    writes main.go, components.go and go.mod into a directory of its own, then
    runs `go mod tidy`, `go mod download` and `go build -trimpath -ldflags="-s -w"`
    there, with this environment (proxy, caches, CGO_ENABLED=0).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    core = recipe.core_version()
    tools = work_dir / "tools" / f"ocb-{core}"
    ocb = tools / "builder"
    if not ocb.is_file():
        _log(log, f"  go install {recipe.builder_module}@{core}")
        run(["install", "-trimpath", f"{recipe.builder_module}@{core}"], {**env, "GOBIN": str(tools)},
            cwd=work_dir, log=log)

    wdir = work_dir / "wrappers" / name
    shutil.rmtree(wdir, ignore_errors=True)
    (wdir / "src").mkdir(parents=True)
    manifest = recipe.load_manifest()
    manifest["dist"] = {**manifest.get("dist", {}), "version": version, "output_path": str(wdir / "src")}
    manifest_file = wdir / "manifest.yaml"
    manifest_file.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")

    _log(log, f"  builder --config {manifest_file} (generate, go mod tidy, go build)")
    cmd = [str(ocb), f"--config={manifest_file}"]
    delay = FIRST_DELAY
    for attempt in range(1, ATTEMPTS + 1):
        proc = subprocess.run(cmd, env=env, cwd=wdir, capture_output=True, text=True)
        if proc.returncode == 0:
            break
        output = (proc.stderr + proc.stdout).strip()
        if attempt < ATTEMPTS and _TRANSIENT.search(output):
            _log(log, f"  builder failed transiently (attempt {attempt}), retrying in {delay:.0f}s")
            time.sleep(delay)
            delay *= 3
            continue
        raise GoError(f"builder --config {manifest_file} failed (exit {proc.returncode}):\n{output[-6000:]}")

    produced = wdir / "src" / recipe.binary
    if not produced.is_file():
        raise GoError(f"{name}: the builder produced no {produced}")
    shutil.copy2(produced, out_dir / recipe.binary)
    toolchain = run(["version", str(out_dir / recipe.binary)], env, cwd=work_dir).split(":", 1)[1].strip()
    return {"recipe": f"ocb {core}", "toolchains": {recipe.binary: toolchain}}


def _log(log, msg: str) -> None:
    (log or (lambda m: print(m, file=sys.stderr, flush=True)))(msg)
