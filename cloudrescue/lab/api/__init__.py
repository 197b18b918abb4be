"""The lab's HTTP OpenStack API: keystone v3, nova v2.1, glance v2 and the admin API."""
