SUMMARY = "A minimal image that boots into the FaceCV Edge appliance"
DESCRIPTION = "core-image-minimal plus facecv (its models and LiteRT's runtime) started by systemd, \
and an ssh server for the installer. Needs a distro with systemd as init manager \
(INIT_MANAGER = \"systemd\"), as yocto/kas/facecv-raspberrypi.yml sets."
LICENSE = "MIT"

require recipes-core/images/core-image-minimal.bb

# ssh-server-dropbear: a small ssh server, for `journalctl -u facecv` and editing the config.
# Drop it with IMAGE_FEATURES:remove:pn-facecv-image = "ssh-server-dropbear".
IMAGE_FEATURES += "ssh-server-dropbear"

# ca-certificates: HTTPS webhooks and MQTT over TLS verify servers against the system store
# (rustls-native-certs); tzdata: events carry UTC, but journal times read better local.
IMAGE_INSTALL += "facecv ca-certificates tzdata"

# The store (/var/lib/facecv) must survive a reboot: keep /var/lib on the root filesystem
# (poky's default), never on a tmpfs.

inherit features_check
REQUIRED_DISTRO_FEATURES = "systemd"
