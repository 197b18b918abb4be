"""Cloud backends: how cloudrescue finds, rescues and unrescues instances."""
