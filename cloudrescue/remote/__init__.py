"""Where commands run and files are read: the rescue system over SSH, or this machine."""
