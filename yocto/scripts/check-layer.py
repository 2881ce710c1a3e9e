#!/usr/bin/env python3
"""Structure check of yocto/meta-facecv, without oe-core and without network (scripts/check-yocto-layer.sh).

Every recipe, append and include is parsed by BitBake's own parser (`bb.parse`, from PyPI's
bitbake-setup wheel) and its statements evaluated into a datastore with oe-core's usual path
variables. What cannot be evaluated here is skipped and checked by name instead: `inherit`
(oe-core's classes are not here) and `require` of a file outside the layer (core-image-minimal.bb).
Anonymous python runs, so the recipe's own input checks are exercised. Each failed check prints
one line that names the problem; the exit status is 1 if there is any.
"""
import glob
import hashlib
import importlib
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
import types
from pathlib import Path

# bb.siggen imports the hash-equivalence client, which the wheel leaves out and parsing never calls.
for _m in ("hashserv", "hashserv.client"):
    sys.modules.setdefault(_m, types.ModuleType(_m))
sys.modules["hashserv"].client = sys.modules["hashserv.client"]
import bb  # noqa: E402
import bb.data  # noqa: E402
import bb.fetch2  # noqa: E402
import bb.parse  # noqa: E402
from bb.parse import ast  # noqa: E402
from bb.parse.parse_py import BBHandler, ConfHandler  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "yocto/meta-facecv"
KAS = REPO / "yocto/kas/facecv-raspberrypi.yml"
sys.path.insert(0, str(Path(__file__).parent))
gen_crates = importlib.import_module("gen-crates")

# oe-core classes the layer may inherit (scarthgap names); a typo or a class from a layer that is
# not a dependency fails here instead of at `bitbake` parse time on a build machine.
KNOWN_CLASSES = {"cargo", "cargo-update-recipe-crates", "systemd", "useradd", "features_check",
                 "bin_package", "core-image"}
# Files outside the layer that a recipe may `require` (oe-core's meta/).
KNOWN_EXTERNAL = {"recipes-core/images/core-image-minimal.bb"}
# oe-core's defaults for a 64-bit target without multilib (bitbake.conf), enough to expand paths.
OE_PATHS = {
    "prefix": "/usr", "exec_prefix": "/usr", "bindir": "/usr/bin", "sbindir": "/usr/sbin",
    "libdir": "/usr/lib", "datadir": "/usr/share", "docdir": "/usr/share/doc", "sysconfdir": "/etc",
    "base_sbindir": "/sbin", "nonarch_libdir": "/usr/lib", "localstatedir": "/var",
    "systemd_system_unitdir": "/usr/lib/systemd/system", "WORKDIR": "/work-dir",
    "B": "/work-dir/build", "D": "/work-dir/image", "TARGET_SYS": "aarch64-poky-linux",
    "STAGING_DIR_TARGET": "/sysroot", "STAGING_LIBDIR_NATIVE": "/native/usr/lib",
    "CARGO_TARGET_SUBDIR": "aarch64-poky-linux/release", "DL_DIR": "/nonexistent-dl",
    "CARGO_BUILD_FLAGS": "-v --frozen", "PACKAGECONFIG": "",
}

problems: list[str] = []


def fail(msg: str) -> None:
    problems.append(msg)
    print(f"  FAIL: {msg}")


def ok(msg: str) -> None:
    print(f"  ok: {msg}")


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


class Recipe:
    """One .bb with its includes from the layer, evaluated without oe-core's classes."""

    def __init__(self, path: Path, overrides: str = "", extra: dict | None = None):
        self.path = path
        self.inherits: list[str] = []
        self.external: list[str] = []
        d = bb.data.init()
        for k, v in OE_PATHS.items():
            d.setVar(k, v)
        pn, _, pv = path.name.rsplit(".", 1)[0].partition("_")
        for k, v in {"PN": pn, "BPN": pn, "PV": pv or "1.0", "FILE": str(path),
                     "FILE_DIRNAME": str(path.parent), "THISDIR": str(path.parent),
                     "BBPATH": str(LAYER), "OVERRIDES": overrides}.items():
            d.setVar(k, v)
        d.setVar("P", "${PN}-${PV}")
        d.setVar("BP", "${BPN}-${PV}")
        for k, v in (extra or {}).items():
            d.setVar(k, v)
        self.d = d
        self._eval(path)
        # As bitbake finalizes a recipe: expand ${PN} in names, then run anonymous python.
        bb.data.expandKeys(d)
        ast.runAnonFuncs(d)

    def _eval(self, path: Path) -> None:
        for node in BBHandler.get_statements(str(path), str(path), path.name):
            if isinstance(node, ast.InheritNode):
                self.inherits += self.d.expand(node.classes).split()
            elif isinstance(node, ast.InheritDeferredNode):
                self.inherits += self.d.expand(node.inherit[0]).split()
            elif isinstance(node, ast.IncludeNode):
                what = self.d.expand(node.what_file)
                if (path.parent / what).is_file():
                    self._eval(path.parent / what)
                else:
                    self.external.append(what)
            else:
                node.eval(self.d)

    def get(self, var: str) -> str:
        return self.d.getVar(var) or ""


def md5_lines(path: Path, begin: int, end: int) -> str:
    """The md5 oe-core's license QA computes: raw lines begin..end (1-based, inclusive)."""
    if not begin and not end:
        return hashlib.md5(path.read_bytes()).hexdigest()
    m = hashlib.md5()
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if end and n > end:
                break
            if n >= begin:
                m.update(line)
    return m.hexdigest()


def check_layer_conf() -> None:
    print("check-layer: conf/layer.conf")
    before = len(problems)
    d = bb.data.init()
    d.setVar("LAYERDIR", str(LAYER))
    ConfHandler.handle(str(LAYER / "conf/layer.conf"), d, include=True)
    d.expandVarref("LAYERDIR")  # as bitbake's cooker does once it has read a layer.conf
    d.delVar("LAYERDIR")
    need = ["BBPATH", "BBFILES", "BBFILE_COLLECTIONS", "BBFILE_PATTERN_facecv", "BBFILE_PRIORITY_facecv",
            "LAYERSERIES_COMPAT_facecv", "LAYERDEPENDS_facecv", "LAYERVERSION_facecv"]
    missing = [v for v in need if not d.getVar(v)]
    if missing:
        fail(f"layer.conf does not set {', '.join(missing)}")
    if "facecv" not in (d.getVar("BBFILE_COLLECTIONS") or "").split():
        fail("layer.conf: BBFILE_COLLECTIONS does not contain 'facecv'")
    if not (d.getVar("BBFILE_PRIORITY_facecv") or "").isdigit():
        fail("layer.conf: BBFILE_PRIORITY_facecv is not a number")
    if str(LAYER) not in (d.getVar("BBPATH") or "").split(":"):
        fail("layer.conf: BBPATH does not contain the layer directory")
    compat = (d.getVar("LAYERSERIES_COMPAT_facecv") or "").split()
    for series in ("scarthgap", "styhead", "walnascar"):
        if series not in compat:
            fail(f"layer.conf: LAYERSERIES_COMPAT_facecv lacks {series}")
    if "core" not in (d.getVar("LAYERDEPENDS_facecv") or "").split():
        fail("layer.conf: LAYERDEPENDS_facecv lacks core")
    if Path(d.getVar("FACECV_REPO_DIR") or "/nonexistent") != REPO:
        fail(f"layer.conf: FACECV_REPO_DIR is {d.getVar('FACECV_REPO_DIR')}, not the repository root {REPO}")
    # Every recipe and append is matched by BBFILES (bitbake sees only those).
    matched = {Path(p) for pat in (d.getVar("BBFILES") or "").split() for p in glob.glob(pat)}
    present = set(LAYER.rglob("*.bb")) | set(LAYER.rglob("*.bbappend"))
    for p in sorted(present - matched):
        fail(f"{rel(p)} is not matched by BBFILES: bitbake would never see it")
    if len(problems) == before:
        ok(f"collection facecv, priority {d.getVar('BBFILE_PRIORITY_facecv')}, series {' '.join(compat)}, "
           f"{len(matched)} recipe/append files matched by BBFILES")


def check_parse() -> dict[str, Recipe]:
    print("check-layer: every recipe, append and include parses (bb.parse)")
    recipes = {}
    files = sorted(LAYER.rglob("*.bb")) + sorted(LAYER.rglob("*.bbappend")) + sorted(LAYER.rglob("*.inc"))
    for p in files:
        try:
            if p.suffix == ".inc":
                BBHandler.get_statements(str(p), str(p), p.name)
                continue
            r = Recipe(p)
        except Exception as e:  # ParseError, SyntaxError in python blocks, bb.fatal in anonymous python
            fail(f"{rel(p)} does not parse: {type(e).__name__}: {e}")
            continue
        unknown = sorted(set(r.inherits) - KNOWN_CLASSES)
        if unknown:
            fail(f"{rel(p)} inherits unknown classes {unknown} (add the layer that has them, or fix the name)")
        ext = sorted(set(r.external) - KNOWN_EXTERNAL)
        if ext:
            fail(f"{rel(p)} requires {ext}, which is neither in the layer nor a known oe-core file")
        recipes[p.name] = r
    print(f"  parsed {len(files)} files; inherits checked against {len(KNOWN_CLASSES)} oe-core class names")
    return recipes


def check_fetch(path: Path) -> None:
    """SRC_URI, per architecture, through bb.fetch2's own URL handling (no download)."""
    print(f"check-layer: {path.name}: SRC_URI through bb.fetch2 (aarch64 and x86-64)")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for arch in ("aarch64", "x86-64"):
        with tempfile.TemporaryDirectory() as dl:
            # SRCREV pinned to HEAD: AUTOREV would ask the repository for its branch tip.
            r = Recipe(path, overrides=f"{arch}:linux:rpi", extra={
                "DL_DIR": dl, "FACECV_SRCREV": head or "0" * 40, "BB_NO_NETWORK": "1",
                "FILESPATH": f"{path.parent}/${{BP}}:{path.parent}/${{BPN}}:{path.parent}/files"})
            urls = r.get("SRC_URI").split()
            if not urls:
                fail(f"{path.name}: SRC_URI is empty for {arch}")
                continue
            try:
                fetcher = bb.fetch2.Fetch(urls, r.d)
            except Exception as e:
                fail(f"{path.name} ({arch}): bb.fetch2 rejects SRC_URI: {type(e).__name__}: {e}")
                continue
            kinds: dict[str, int] = {}
            for url in fetcher.urls:
                ud = fetcher.ud[url]
                kinds[ud.type] = kinds.get(ud.type, 0) + 1
                if ud.type == "file":
                    if not os.path.exists(ud.localpath or ""):
                        fail(f"{path.name}: {url} is not in the layer's files directories")
                elif ud.type != "git" and not getattr(ud, "sha256_expected", None):
                    fail(f"{path.name} ({arch}): no SRC_URI[{ud.parm.get('name', '?')}.sha256sum] for {url}")
            ok(f"{arch}: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))


def check_installs(r: Recipe) -> None:
    d = r.d
    body = d.getVar("do_install", False) or ""
    used = sorted(set(re.findall(r"\$\{S\}/([^\s;|&>'\"]+)", body)))
    for p in used:
        if not (REPO / p).is_file():
            fail(f"do_install installs ${{S}}/{p}, which is not in the repository")
    shipped = {f"models/{p.name}" for p in (REPO / "models").glob("*.tflite")}
    for m in sorted(shipped - set(used)):
        fail(f"{m} is in the repository but the recipe does not install it")
    packages = (d.getVar("PACKAGES") or "").split() or ["facecv", "facecv-models", "facecv-model-faceres"]
    files = d.expand(" ".join(d.getVar(f"FILES:{pkg}") or "" for pkg in packages)).split()
    for m in sorted(shipped):
        if f"/usr/share/facecv/{m}" not in files:
            fail(f"{m} is installed but no package's FILES lists it")
    ok(f"{len(used)} repo files installed from ${{S}}, all present; every models/*.tflite installed and packaged")


def check_rewrite(r: Recipe) -> None:
    """Runs the recipe's sed expressions on the repo's unit and config, as do_install does."""
    before = len(problems)
    d = r.d
    rewrite = shlex.split(d.getVar("FACECV_PATH_REWRITE"))
    token_rewrite = shlex.split(d.expand(d.getVar("FACECV_TOKEN_REWRITE", False).replace(
        "${FACECV_API_TOKEN}", "a-token-of-24-characters")))
    out = {}
    for f in ("systemd/facecv.service", "systemd/facecv.toml"):
        out[f] = subprocess.run(["sed", *rewrite, str(REPO / f)], capture_output=True, text=True, check=True).stdout
        left = [l for l in out[f].splitlines() if "/opt/facecv" in l and not l.lstrip().startswith("#")]
        if left:
            fail(f"{f} after FACECV_PATH_REWRITE still names /opt/facecv: {left[0].strip()}")
    if "\nExecStart=/usr/bin/facecv serve " not in out["systemd/facecv.service"]:
        fail("facecv.service after the rewrite: ExecStart is not /usr/bin/facecv serve ...")
    cfg = tomllib.loads(out["systemd/facecv.toml"])
    if cfg["vision"]["models_dir"] != "/usr/share/facecv/models":
        fail(f"facecv.toml after the rewrite: vision.models_dir = {cfg['vision']['models_dir']}, "
             "not where the recipe installs the models (/usr/share/facecv/models)")
    lib = cfg["vision"]["runtime"].get("library")
    litert = Recipe(LAYER / "recipes-facecv/litert/litert-bin_2.3.0.bb")
    if lib not in litert.get("FILES:litert-bin").split():
        fail(f"facecv.toml after the rewrite: vision.runtime.library = {lib}, which litert-bin does not install")
    tok = subprocess.run(["sed", *token_rewrite], input=out["systemd/facecv.toml"], capture_output=True,
                         text=True, check=True).stdout
    tcfg = tomllib.loads(tok)
    if tcfg["api"].get("token") != "a-token-of-24-characters" or tcfg["api"]["listen"] != "0.0.0.0:7000":
        fail("FACECV_TOKEN_REWRITE no longer sets api.token and listen = 0.0.0.0:7000 in systemd/facecv.toml")
    if tcfg["api"].get("tls_listen") != "0.0.0.0:7443":
        fail("FACECV_TOKEN_REWRITE no longer sets tls_listen = 0.0.0.0:7443 in systemd/facecv.toml")
    if len(problems) == before:
        ok(f"unit and config rewritten: ExecStart /usr/bin/facecv, models {cfg['vision']['models_dir']}, "
           f"library {lib}; FACECV_API_TOKEN sets token and listen")


def check_facecv(r: Recipe) -> None:
    print("check-layer: facecv recipe against the repository")
    version = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
    if r.path.name != f"facecv_{version}.bb":
        fail(f"{r.path.name}: Cargo.toml's version is {version}: rename the recipe to facecv_{version}.bb")
    check_installs(r)
    check_rewrite(r)
    # The recipe's own input checks run and refuse.
    before = len(problems)
    for bad in ("short", 'has"quote-and-more-than-16'):
        try:
            Recipe(r.path, extra={"FACECV_API_TOKEN": bad})
            fail(f"FACECV_API_TOKEN={bad!r} was accepted")
        except Exception:
            pass
    try:
        Recipe(r.path, extra={"RUSTVERSION": "1.75.0"})
        fail("a Rust 1.75 toolchain is not refused at parse time")
    except bb.parse.SkipRecipe:
        pass
    if len(problems) == before:
        ok("the recipe refuses a bad FACECV_API_TOKEN and a Rust older than FACECV_MIN_RUST")
    n_lock = gen_crates.render(REPO / "Cargo.lock").count("crate://")
    n_uri = sum(1 for u in r.get("SRC_URI").split() if u.startswith("crate://"))
    if n_lock != n_uri:
        fail(f"SRC_URI has {n_uri} crate:// entries, Cargo.lock {n_lock}")


def check_licences(recipes: dict[str, Recipe]) -> None:
    print("check-layer: LIC_FILES_CHKSUM md5s")
    for name, r in recipes.items():
        if not name.endswith(".bb"):
            continue
        for entry in r.get("LIC_FILES_CHKSUM").split():
            url, *params = entry.split(";")
            parm = dict(p.split("=", 1) for p in params)
            path = url.removeprefix("file://")
            if not name.startswith("facecv_"):
                print(f"  note: {name}: {path} is inside the fetched source, checked by a real fetch only")
                continue
            f = REPO / path
            if not f.is_file():
                fail(f"{name}: LIC_FILES_CHKSUM names {path}, which is not in the repository")
                continue
            begin, end = int(parm.get("beginline", 0)), int(parm.get("endline", 0))
            got = md5_lines(f, begin, end)
            span = f"lines {begin}-{end}" if begin or end else "whole file"
            if got != parm.get("md5"):
                fail(f"{name}: LIC_FILES_CHKSUM md5 of {path} ({span}) is {got}, "
                     f"the recipe says {parm.get('md5')}")
            else:
                ok(f"{name}: {path} ({span})")


def check_litert(r: Recipe) -> None:
    print("check-layer: litert-bin against scripts/fetch-litert.sh")
    before = len(problems)
    script = (REPO / "scripts/fetch-litert.sh").read_text()
    version = re.search(r'^VERSION="([^"]+)"', script, re.M).group(1)
    if r.path.name != f"litert-bin_{version}.bb":
        fail(f"{r.path.name}: fetch-litert.sh pins ai-edge-litert {version}")
    for arch, override in (("aarch64", "aarch64"), ("x86_64", "x86-64")):
        block = re.search(rf"^\s*{arch}\)\n(.*?);;", script, re.M | re.S).group(1)
        want = dict(re.findall(r'(\w+)_sha="([0-9a-f]+)"', block))
        if r.d.getVarFlag("SRC_URI", f"{override}.sha256sum") != want["wheel"]:
            fail(f"litert-bin: the {arch} wheel's sha256 differs from fetch-litert.sh's")
        ra = Recipe(r.path, overrides=override)
        if ra.get("LITERT_LIB_SHA256") != want["lib"]:
            fail(f"litert-bin: LITERT_LIB_SHA256 for {arch} differs from fetch-litert.sh's lib_sha")
        if f"manylinux_2_27_{arch}.whl" not in ra.get("SRC_URI"):
            fail(f"litert-bin: SRC_URI for {arch} is not the {arch} wheel")
    if len(problems) == before:
        ok(f"ai-edge-litert {version}: wheel and library sha256 for aarch64 and x86_64 match fetch-litert.sh")


def check_kas() -> None:
    print(f"check-layer: {rel(KAS)}")
    import jsonschema
    import yaml
    from kas.configschema import CONFIGSCHEMA
    cfg = yaml.safe_load(KAS.read_text())
    try:
        jsonschema.validate(cfg, CONFIGSCHEMA)
        ok("valid against kas's configuration schema")
    except jsonschema.ValidationError as e:
        fail(f"{rel(KAS)} is not a valid kas file: {e.message} at {'/'.join(map(str, e.path))}")
        return
    layers = [l for repo in (cfg.get("repos") or {}).values() if repo for l in (repo.get("layers") or {})]
    if "yocto/meta-facecv" not in layers:
        fail(f"{rel(KAS)} does not add the layer yocto/meta-facecv")
    if cfg.get("machine") != "raspberrypi4-64":
        fail(f"{rel(KAS)}: machine is {cfg.get('machine')}, not raspberrypi4-64")


def main() -> int:
    check_layer_conf()
    recipes = check_parse()
    facecv = next((r for n, r in recipes.items() if n.startswith("facecv_")), None)
    litert = next((r for n, r in recipes.items() if n.startswith("litert-bin_")), None)
    if facecv is None or litert is None:
        fail("recipes-facecv lacks a facecv_<version>.bb or litert-bin_<version>.bb that parses")
    else:
        check_facecv(facecv)
        check_litert(litert)
        check_fetch(facecv.path)
        check_fetch(litert.path)
    check_licences(recipes)
    print("check-layer: the crate list against Cargo.lock")
    if gen_crates.main(["--check"]) != 0:
        fail("facecv-crates.inc is stale: run yocto/scripts/gen-crates.py")
    check_kas()
    if problems:
        print(f"check-layer: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print("check-layer: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
