"""The lab: a local OpenStack-shaped cloud whose instances run real sshd on real disks."""
