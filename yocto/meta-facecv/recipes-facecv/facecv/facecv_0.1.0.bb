SUMMARY = "FaceCV Edge: on-device face recognition with durable, signed webhook and MQTT delivery"
DESCRIPTION = "One Rust binary (facecv) that watches cameras, recognises faces with TFLite models \
through LiteRT, records every event in an SQLite outbox and delivers it as signed webhooks and MQTT."
SECTION = "multimedia"

# The crate is Apache-2.0 (the repository's LICENSE). The models have their own terms
# (models/LICENSES.md, checksummed too): BlazeFace Apache-2.0; MobileFaceNet MIT; FaceRes Apache-2.0 as
# claimed upstream, shipped in an MIT npm package, trained on VGGFace2 (non-commercial research
# use only), so it is a package of its own that nothing pulls in. Like oe-core's cargo recipes,
# LICENSE names the crate's own licence, not those of the crates linked into it (mostly
# MIT/Apache-2.0; also ISC, BSD-3-Clause, Unicode-3.0, Zlib, CDLA-Permissive-2.0 and SQLite's
# public-domain dedication): yocto/README.md says how to list them.
LICENSE = "Apache-2.0 & MIT"
LICENSE:${PN} = "Apache-2.0"
LICENSE:${PN}-models = "Apache-2.0 & MIT"
LICENSE:${PN}-model-faceres = "Apache-2.0 & MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57 \
                    file://models/LICENSES.md;md5=c43560a40518651c34abe435a3ce2982"

# Source: by default the git repository this layer lives in (FACECV_REPO_DIR, set in
# layer.conf), at the tip of FACECV_GIT_BRANCH, so a checkout builds itself. For a release, set
# in local.conf (or a kas file):
#   FACECV_GIT_URI = "git://git.example.org/facecv-edge.git;protocol=https"
#   FACECV_SRCREV = "<the release commit>"
# To build uncommitted changes, use externalsrc (yocto/README.md).
FACECV_GIT_URI ?= "git://${FACECV_REPO_DIR};protocol=file"
FACECV_GIT_BRANCH ?= "main"
FACECV_SRCREV ?= "${AUTOREV}"
SRC_URI = "${FACECV_GIT_URI};branch=${FACECV_GIT_BRANCH};destsuffix=git"
SRCREV = "${FACECV_SRCREV}"
PV .= "+git"

# scarthgap unpacks into WORKDIR; styhead and later into UNPACKDIR, which they always set.
UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/git"

# The crates Cargo.lock pins, fetched by bitbake (crate://) so do_compile runs offline with
# --frozen. Regenerate after every Cargo.lock change: yocto/scripts/gen-crates.py (CI checks it),
# or `bitbake -c update_crates facecv`.
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd features_check

# The unit is the only way the appliance is started (Type=notify, watchdog, sandbox).
REQUIRED_DISTRO_FEATURES = "systemd"

# Cargo.toml's rust-version (1.89, which locked crates such as uuid need) is newer than the Rust of
# scarthgap (1.75), styhead (1.79) or walnascar (1.84): yocto/README.md says where a newer one
# comes from. Checked here so an old toolchain fails at parse time with this message rather
# than deep in do_compile.
FACECV_MIN_RUST = "1.89"
python () {
    have = (d.getVar('RUSTVERSION') or '').rstrip('%')
    want = d.getVar('FACECV_MIN_RUST')
    if have and bb.utils.vercmp_string_op(have, want, '<'):
        raise bb.parse.SkipRecipe("needs Rust >= %s, this build has %s (yocto/README.md: newer Rust)" % (want, have))
}

# Where litert-bin exists (glibc, aarch64 or x86_64).
COMPATIBLE_HOST = "(aarch64|x86_64).*-linux$"

# Cargo features. `v4l2` (V4L2 cameras) builds v4l2-sys-mit, whose build script runs bindgen:
# libclang from meta-clang's clang-native, and the target's kernel headers through the sysroot.
# `gpio` (door relays, PIR inputs through rppal) is pure Rust, on for Raspberry Pi machines.
PACKAGECONFIG ??= "v4l2"
PACKAGECONFIG:append:rpi = " gpio"
PACKAGECONFIG[v4l2] = ",,clang-native"
PACKAGECONFIG[gpio] = ""

def facecv_cargo_features(d):
    cfg = (d.getVar('PACKAGECONFIG') or '').split()
    features = [f for f, c in (('v4l2', 'v4l2'), ('rpi', 'gpio')) if c in cfg]
    return '--features=' + ','.join(features) if features else ''

CARGO_BUILD_FLAGS += "--bin facecv --no-default-features ${@facecv_cargo_features(d)}"

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--target=${TARGET_SYS} --sysroot=${STAGING_DIR_TARGET}"

# rusqlite's `bundled` SQLite and ring's C and assembly are compiled by the cc crate with the
# target compiler that oe-core's cargo class exports (CC/TARGET_CC): no DEPENDS needed. The
# edgefirst-tflite-sys build script downloads nothing (its `vendored` feature is off).

# The API answers loopback clients only until it has a token. Setting FACECV_API_TOKEN (16+
# characters, e.g. from `openssl rand -hex 24`) writes it into /etc/facecv/facecv.toml and opens
# the API on 0.0.0.0:7000 (HTTPS on 0.0.0.0:7443). It then sits in the image and the build's logs: for a fleet, prefer a
# bbappend that installs a per-device config, or set it on the device (yocto/README.md).
FACECV_API_TOKEN ??= ""
python () {
    import re
    token = d.getVar('FACECV_API_TOKEN')
    if token and not re.fullmatch(r'[A-Za-z0-9._~+/=-]{16,}', token):
        bb.fatal("FACECV_API_TOKEN must be 16 or more characters from A-Z a-z 0-9 . _ ~ + / = -")
}

# The repo's unit and config assume scripts/deploy.sh's /opt/facecv/current layout; these
# rewrite them to where this recipe installs things (do_install fails if any path is left over).
FACECV_PATH_REWRITE = "\
    -e 's|/opt/facecv/current/bin/|${bindir}/|g' \
    -e 's|/opt/facecv/current/share/doc/facecv/|${docdir}/${BPN}/|g' \
    -e 's|/opt/facecv/current/share/facecv/|${datadir}/facecv/|g' \
    -e 's|/opt/facecv/current/lib/libLiteRt.so|${libdir}/libLiteRt.so|g' \
"
FACECV_TOKEN_REWRITE = "\
    -e 's|^# token = .*|token = \"${FACECV_API_TOKEN}\"|' \
    -e 's|^listen = \"127.0.0.1:7000\"|listen = \"0.0.0.0:7000\"|' \
    -e 's|^tls_listen = \"127.0.0.1:7443\"|tls_listen = \"0.0.0.0:7443\"|' \
"

do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${B}/target/${CARGO_TARGET_SUBDIR}/facecv ${D}${bindir}/facecv

    install -d ${D}${datadir}/facecv/models
    install -m 0644 ${S}/models/README.md ${S}/models/LICENSES.md ${S}/models/blazeface_full_int8.tflite \
        ${S}/models/mobilefacenet_expo_f32.tflite ${S}/models/mobilefacenet_expo_int8.tflite \
        ${S}/models/faceres_hse_int8_iou8.tflite ${D}${datadir}/facecv/models/

    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/README.md ${D}${docdir}/${BPN}/README.md

    install -d ${D}${sysconfdir}/facecv
    sed ${FACECV_PATH_REWRITE} ${S}/systemd/facecv.toml > ${D}${sysconfdir}/facecv/facecv.toml
    if [ -n "${FACECV_API_TOKEN}" ]; then
        sed -i ${FACECV_TOKEN_REWRITE} ${D}${sysconfdir}/facecv/facecv.toml
        grep -q '^token = ' ${D}${sysconfdir}/facecv/facecv.toml || bbfatal "FACECV_API_TOKEN: no '# token =' line to replace in systemd/facecv.toml"
    fi
    # It holds the API token: root writes it, the service's group reads it.
    chown root:facecv ${D}${sysconfdir}/facecv/facecv.toml
    chmod 0640 ${D}${sysconfdir}/facecv/facecv.toml

    install -d ${D}${systemd_system_unitdir}
    sed ${FACECV_PATH_REWRITE} ${S}/systemd/facecv.service > ${D}${systemd_system_unitdir}/facecv.service
    chmod 0644 ${D}${systemd_system_unitdir}/facecv.service

    install -d ${D}${nonarch_libdir}/tmpfiles.d
    install -m 0644 ${S}/systemd/facecv.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/facecv.conf
    install -d ${D}${nonarch_libdir}/modules-load.d
    install -m 0644 ${S}/systemd/facecv.modules-load ${D}${nonarch_libdir}/modules-load.d/facecv.conf

    for f in ${D}${sysconfdir}/facecv/facecv.toml ${D}${systemd_system_unitdir}/facecv.service; do
        if grep -v '^[[:space:]]*#' "$f" | grep -q /opt/facecv; then
            bbfatal "$f still names /opt/facecv after FACECV_PATH_REWRITE: update the recipe"
        fi
    done
}

# The user the unit runs as (User=facecv, SupplementaryGroups=video gpio), created when the
# image is built rather than by systemd-sysusers at first boot: it works on a read-only rootfs and
# lets do_install give the config to group facecv. So systemd/facecv.sysusers is not installed.
# `video` comes with base-passwd; `gpio` is created here if the image has none, since systemd
# refuses to start a unit whose SupplementaryGroups= names a missing group.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio"
USERADD_PARAM:${PN} = "--system --home-dir /var/lib/facecv --no-create-home \
    --shell ${base_sbindir}/nologin --user-group --groups video,gpio facecv"

SYSTEMD_SERVICE:${PN} = "facecv.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

PACKAGES =+ "${PN}-models ${PN}-model-faceres"
FILES:${PN}-models = "${datadir}/facecv/models/README.md ${datadir}/facecv/models/LICENSES.md \
    ${datadir}/facecv/models/blazeface_full_int8.tflite \
    ${datadir}/facecv/models/mobilefacenet_expo_f32.tflite \
    ${datadir}/facecv/models/mobilefacenet_expo_int8.tflite"
FILES:${PN}-model-faceres = "${datadir}/facecv/models/faceres_hse_int8_iou8.tflite"
FILES:${PN} += "${nonarch_libdir}/tmpfiles.d/facecv.conf ${nonarch_libdir}/modules-load.d/facecv.conf"

CONFFILES:${PN} = "${sysconfdir}/facecv/facecv.toml"

# The detector and the default embedder are needed to recognise anyone; LiteRT to run them.
RDEPENDS:${PN} = "${PN}-models litert-bin"
RDEPENDS:${PN}-model-faceres = "${PN}-models"
