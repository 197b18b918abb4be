"""The interactive repair shell: the remote chroot, the local terminal, what the session changed."""
