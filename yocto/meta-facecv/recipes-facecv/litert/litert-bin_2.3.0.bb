SUMMARY = "LiteRT (TensorFlow Lite) runtime library, libLiteRt.so, from Google's ai-edge-litert wheel"
DESCRIPTION = "The prebuilt libLiteRt.so that facecv loads at run time to run its TFLite models \
(CPU through XNNPACK). Taken from PyPI's ai-edge-litert wheel, the only registry package that \
ships a current TFLite runtime for both aarch64 and x86_64 Linux (scripts/fetch-litert.sh)."
HOMEPAGE = "https://ai.google.dev/edge/litert"
SECTION = "libs"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://ai_edge_litert-${PV}.dist-info/licenses/LICENSE;md5=86d3f3a95c324c9479bd8986968f4327"

# One wheel per architecture, pinned by sha256 (the same files as scripts/fetch-litert.sh). The
# cp311 tag does not matter: libLiteRt.so does not use Python; cp311 is pinned so the bytes are.
# downloadfilename ends in .zip so do_unpack unzips the wheel (and pulls in unzip-native).
LITERT_WHEEL_URI = "https://files.pythonhosted.org/packages"
SRC_URI:aarch64 = "${LITERT_WHEEL_URI}/33/68/446c2685f5752eef7891dc8a43ca27bd393461ea0caac7c413587c2f4535/ai_edge_litert-${PV}-cp311-cp311-manylinux_2_27_aarch64.whl;downloadfilename=ai_edge_litert-${PV}-aarch64.zip;subdir=${BP};name=aarch64"
SRC_URI:x86-64 = "${LITERT_WHEEL_URI}/65/da/254ec1df4f28ae0d03c410921053b570b116bd917dd64c296bdcc4b5192b/ai_edge_litert-${PV}-cp311-cp311-manylinux_2_27_x86_64.whl;downloadfilename=ai_edge_litert-${PV}-x86_64.zip;subdir=${BP};name=x86-64"
SRC_URI[aarch64.sha256sum] = "853fc608f96da87bd5f3458465dfb9abbf18d5ae6b94eceacead407146f175ae"
SRC_URI[x86-64.sha256sum] = "1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23"

# The library's own sha256 per architecture, checked after unpacking (fetch-litert.sh's values).
LITERT_LIB_SHA256:aarch64 = "b57687dc234d2b8b0598aef5a9c961ed24263df8f8b3f56adbee1cff618e544b"
LITERT_LIB_SHA256:x86-64 = "eec47eb35e2924b3166015887e652a58edc9af823ae38e02bf83bef2548300bb"

UNPACKDIR ??= "${WORKDIR}"
S = "${UNPACKDIR}/${BP}"

# Google builds only these two; there is no armv7 wheel. The library needs glibc >= 2.34 and
# GLIBCXX_3.4.30 (GCC 12 or newer), which scarthgap and later have; musl cannot load it.
COMPATIBLE_HOST = "(aarch64|x86_64).*-linux$"

inherit bin_package

do_install() {
    echo "${LITERT_LIB_SHA256}  ${S}/ai_edge_litert/libLiteRt.so" | sha256sum -c --quiet \
        || bbfatal "libLiteRt.so does not match LITERT_LIB_SHA256"
    install -d ${D}${libdir}
    install -m 0755 ${S}/ai_edge_litert/libLiteRt.so ${D}${libdir}/libLiteRt.so
}

# Prebuilt and stripped by Google: nothing to strip or split into -dbg.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INHIBIT_SYSROOT_STRIP = "1"

# It has a GNU hash section, so the `ldflags` QA test (which looks for one) passes unskipped.
# libLiteRt.so is its own SONAME (no version suffix) and is dlopen()ed by that name, so it
# belongs in the main package, not in -dev as an unversioned .so normally would.
FILES_SOLIBSDEV = ""
FILES:${PN} = "${libdir}/libLiteRt.so"
INSANE_SKIP:${PN} = "already-stripped dev-so"
