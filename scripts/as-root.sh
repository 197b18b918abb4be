# Sourced by the scripts that need root (apt, and the lab's namespaces, loop devices and
# mounts): `as_root "$@"` re-runs the calling script through sudo when it is not root, so the
# README's commands work as root on a machine without sudo, and as a user with sudo.
as_root() {
  ((EUID == 0)) && return 0
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=CLOUDRESCUE_LAB_DIR,CLOUDRESCUE_STATE_DIR,CLOUDRESCUE_TEST_WORKERS,PYTHON -- "$0" "$@"
  fi
  echo "$(basename "$0"): needs root (and sudo is not installed): run it as root" >&2
  exit 1
}
