"""Fill the lab mirror: Go release tarballs, the wheelhouse and the Node backend's tarball.

Each component is reused when its artifacts exist, still hash to what was
recorded, and were made from the same inputs; otherwise it is rebuilt.
"""

import fcntl
import shutil
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from lab import paths

from . import gobuild, node_backend, recipes, stamps, tarball, wheels

WHEELS = "wheels"
# Python code the lab hosts install from the wheelhouse: the Grafana backup job
# (grafana-client). The lab's backend is Node: its tarball is node_backend's.
REQUIREMENTS_FILES = (
    paths.REPO / "files" / "grafana_backup" / "requirements.txt",
)
REQUIREMENTS = paths.BUILD_DIR / "wheelhouse-requirements.txt"


def _combined_requirements() -> Path:
    """Every requirements file in one, so the wheelhouse is rebuilt when any of them changes."""
    for source in REQUIREMENTS_FILES:
        if not source.is_file():
            raise FileNotFoundError(f"{source} is missing")
    text = "".join(f"# from {s.relative_to(paths.REPO)}\n{s.read_text()}\n" for s in REQUIREMENTS_FILES)
    REQUIREMENTS.parent.mkdir(parents=True, exist_ok=True)
    if not REQUIREMENTS.is_file() or REQUIREMENTS.read_text() != text:
        REQUIREMENTS.write_text(text)
    return REQUIREMENTS


def build_all(force: bool = False, names=None, log=print) -> dict:
    """Build (or reuse) every lab artifact; `names` limits it to some.

    Returns {"components": {name: result}, "total_seconds": float}, where a
    result has "status" ("built", "reused" or "skipped"), "seconds" and the
    artifact details (paths relative to the mirror, size, sha256).
    """
    releases = recipes.load_releases()
    known = [*releases, WHEELS, node_backend.NAME]
    wanted = list(names) if names else known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(known)}")

    results = {}
    start = time.monotonic()
    with _lock(paths.BUILD_DIR):
        for name in wanted:
            t0 = time.monotonic()
            if name == WHEELS:
                result = _wheels(force, log)
            elif name == node_backend.NAME:
                result = _node_backend(force, log)
            elif name in recipes.PRODUCTION_ONLY:
                # Grafana, Loki, Tempo: pinned for production, never built here.
                result = {"status": "skipped", "reason": recipes.PRODUCTION_ONLY[name]}
            elif name in recipes.BUILDER_RECIPES:
                result = _go_component(releases[name], recipes.BUILDER_RECIPES[name], force, log)
            elif name not in recipes.RECIPES:
                result = {"status": "skipped", "reason": "no lab recipe"}
            else:
                result = _go_component(releases[name], recipes.RECIPES[name], force, log)
            result["seconds"] = round(time.monotonic() - t0, 3)
            results[name] = result
            log(f"{name:<14} {result['status']:<7} {result['seconds']:8.2f}s"
                + (f"  {result['tarball']}" if "tarball" in result else "")
                + (f"  ({result['reason']})" if "reason" in result else ""))
    total = round(time.monotonic() - start, 3)
    log(f"{'total':<14} {'':<7} {total:8.2f}s")
    return {"components": results, "total_seconds": total}


def _recipe_binaries(recipe) -> list[str]:
    if isinstance(recipe, recipes.BuilderRecipe):
        return [recipe.binary]
    return [b for b, _ in recipe.binaries]


def _go_component(release: recipes.Release, recipe, force: bool, log) -> dict:
    distribution = isinstance(recipe, recipes.BuilderRecipe)
    if set(release.binaries) != set(_recipe_binaries(recipe)):
        raise ValueError(f"{release.name}: versions.yml binaries {list(release.binaries)} "
                         f"do not match the recipe's {_recipe_binaries(recipe)}")
    build_dir = paths.BUILD_DIR
    env = gobuild.environment(build_dir)
    module_version = recipe.module_version(release.version)
    tar_rel = release.tarball_path()
    sums_rel = release.checksums_path()
    tar_path = paths.MIRROR_DIR / tar_rel
    sums_path = paths.MIRROR_DIR / sums_rel
    module = recipe.license_module if distribution else recipe.module
    inputs = {
        "version": release.version,
        "module": module,
        "module_version": module_version,
        "go": gobuild.local_version(env, build_dir),
        "goos_goarch": f"{recipes.GOOS}/{recipes.GOARCH}",
        "recipe": recipe.fingerprint(),
        "archive": f"{tar_rel}:{release.archive_root()}",
    }
    stamp_path = build_dir / "stamps" / f"{release.name}.json"
    stamp = stamps.read(stamp_path)
    if not force and _reusable(stamp, inputs, tar_path, sums_path):
        return {**stamp["outputs"], "status": "reused"}

    log(f"{release.name}: building {module}@{module_version}"
        + (f" with the upstream builder from {recipe.manifest}" if distribution else ""))
    info = gobuild.download(module, module_version, env, build_dir, log=log)
    module_dir = Path(info["Dir"])
    stage = build_dir / "stage" / release.name
    shutil.rmtree(stage, ignore_errors=True)
    if distribution:
        gomod = {"go": None, "replace": [], "exclude": []}
        ldflags = ["-s", "-w"]  # the builder's default, as upstream's release build
        built = gobuild.build_distribution(release.name, recipe, release.version, stage, build_dir,
                                           env, log=log)
        include_license = True
    else:
        gomod = gobuild.directives(Path(info["GoMod"]), env, build_dir)
        values = recipes.build_info(release.version, module_version, info["Time"])
        ldflags = [flag.format(**values) for flag in recipe.ldflags]
        built = gobuild.build(release.name, recipe, module_version, ldflags, stage, build_dir,
                              gomod, env, log=log)
        include_license = recipe.include_license

    members = {b: stage / b for b in release.binaries}
    if include_license:
        members["LICENSE"] = module_dir / "LICENSE"
    mtime = int(datetime.fromisoformat(info["Time"].replace("Z", "+00:00")).timestamp())
    sha = tarball.pack(tar_path, members, root=release.archive_root(), mtime=mtime)
    tarball.write_checksums(sums_path, {tar_path.name: sha})

    outputs = {
        "tarball": str(tar_rel),
        "checksums": str(sums_rel),
        "sha256": sha,
        "size": tar_path.stat().st_size,
        "module_version": module_version,
        "module_sum": info.get("Sum"),
        "module_go": gomod["go"],
        "recipe": built["recipe"],
        "replace": gomod["replace"],
        "exclude": gomod["exclude"],
        "toolchains": built["toolchains"],
        "ldflags": ldflags,
        "tags": list(recipe.tags),
    }
    stamps.write(stamp_path, {"inputs": inputs, "outputs": outputs})
    shutil.rmtree(stage, ignore_errors=True)
    return {**outputs, "status": "built"}


def _reusable(stamp, inputs: dict, tar_path: Path, sums_path: Path) -> bool:
    if not stamp or stamp.get("inputs") != inputs:
        return False
    if not (tar_path.is_file() and sums_path.is_file()):
        return False
    sha = stamp["outputs"]["sha256"]
    # Hashing catches a truncated or replaced tarball; cheap next to a rebuild.
    return (tarball.read_checksums(sums_path).get(tar_path.name) == sha
            and tarball.sha256_file(tar_path) == sha)


def _wheels(force: bool, log) -> dict:
    requirements = _combined_requirements()
    pythons = wheels.lab_pythons()
    inputs = wheels.inputs(requirements, pythons)
    stamp_path = paths.BUILD_DIR / "stamps" / f"{WHEELS}.json"
    stamp = stamps.read(stamp_path)
    if (not force and stamp and stamp.get("inputs") == inputs
            and wheels.present(paths.WHEELS_DIR, stamp["outputs"]["files"])):
        return {**stamp["outputs"], "status": "reused"}
    log(f"{WHEELS}: pip download for Python {', '.join(pythons)} -r "
        + " -r ".join(str(s.relative_to(paths.REPO)) for s in REQUIREMENTS_FILES))
    outputs = wheels.download(requirements, paths.WHEELS_DIR, pythons, log=log)
    outputs["dir"] = str(paths.WHEELS_DIR.relative_to(paths.MIRROR_DIR))
    stamps.write(stamp_path, {"inputs": inputs, "outputs": outputs})
    return {**outputs, "status": "built"}


def _node_backend(force: bool, log) -> dict:
    version = node_backend.release_version()
    inputs = {"version": version, "npm_ci": list(node_backend.NPM_CI)}
    stamp_path = paths.BUILD_DIR / "stamps" / f"{node_backend.NAME}.json"
    stamp = stamps.read(stamp_path)
    tar_path = paths.MIRROR_DIR / node_backend.tarball_path(version)
    sums_path = paths.MIRROR_DIR / node_backend.checksums_path()
    if not force and _reusable(stamp, inputs, tar_path, sums_path):
        return {**stamp["outputs"], "status": "reused"}
    outputs = node_backend.build(paths.BUILD_DIR / "stage" / node_backend.NAME, log=log)
    stamps.write(stamp_path, {"inputs": inputs, "outputs": outputs})
    return {**outputs, "status": "built"}


@contextmanager
def _lock(build_dir: Path):
    # `lab up` and a manual `python -m lab.artifacts build` must not write the
    # same tarball at once.
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
