#!/bin/bash
# Writes the seed corpora of fuzz.cidr and fuzz.coord_http_path (small text inputs: the
# shapes the parsers accept and the refusals their unit tests name). Run from anywhere.
set -eu
d=$(cd "$(dirname "$0")" && pwd)/corpus
mkdir -p "$d/cidr" "$d/coord_http_path"
printf '10.0.0.0/8' >"$d/cidr/v4"
printf '2001:db8::/32' >"$d/cidr/v6"
printf '10.1.0.0/8' >"$d/cidr/hostbits"
printf '::ffff:10.0.0.0/104' >"$d/cidr/mapped"
printf '192.168.1.7' >"$d/cidr/bare"
printf '0.0.0.0/0' >"$d/cidr/all"
printf 'fe80::1%%eth0/64' >"$d/cidr/zone"
printf '/live/alice/index.m3u8' >"$d/coord_http_path/watch"
printf '/live/alice/index.m3u8?region=eu' >"$d/coord_http_path/watch_region"
printf '/api/v1/route?channel=alice&region=us-east' >"$d/coord_http_path/api_route"
printf '/live/../index.m3u8' >"$d/coord_http_path/dotdot"
printf '/live/a%%2Fb/index.m3u8?region&region=x&&' >"$d/coord_http_path/escaped"
