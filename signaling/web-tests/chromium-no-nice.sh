#!/bin/sh
# Chromium without CAP_SYS_NICE, as a user's browser runs: the tier runs as root, and there
# Chromium gives its audio threads real-time priority and others nice -8. Nine of them on two
# cores then take the machine from the servers (test.mjs, "nine participants").
exec setpriv --bounding-set=-sys_nice -- /usr/bin/chromium "$@"
