# Adds FaceCV Edge to the stock core-image-minimal when FACECV_IN_CORE_IMAGE_MINIMAL = "1" (in
# local.conf), for a distro that already has its own minimal image pipeline. Off by default so
# merely adding meta-facecv changes no image; facecv-image.bb is the ready-made alternative.
FACECV_IN_CORE_IMAGE_MINIMAL ??= "0"
IMAGE_INSTALL:append = "${@' facecv ca-certificates' if d.getVar('FACECV_IN_CORE_IMAGE_MINIMAL') == '1' else ''}"
