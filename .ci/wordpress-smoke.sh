#!/usr/bin/env bash
# Smoke test of a WordPress started by `.ci/wordpress.sh start [DIR]`, through its REST API only (curl;
# PHP CLI, which the install brings, reads the JSON answers).
#
#   .ci/wordpress-smoke.sh [DIR]      DIR defaults to /tmp/secutix-sync-wp; reads DIR/env
#
# Checks: the site is the instance of DIR (`.ci/wordpress.sh check`); health route; 401 without or with wrong credentials; create an entry with every meta key and read
# it back; lookup by external id (published, draft, trashed, missing, batch form); update; a second create for
# one external id is refused (409); a create with a bad meta value writes nothing; core batch API (/batch/v1)
# with 2 creates; trash then delete. Exits non-zero on the first mismatch, naming it. Every post it creates is
# deleted on exit, also on failure.
set -euo pipefail

dir=$(realpath -m "${1:-/tmp/secutix-sync-wp}")
[ -r "$dir/env" ] || {
	echo "wordpress-smoke.sh: $dir/env not found: run '.ci/wordpress.sh start $dir' first" >&2
	exit 1
}
# shellcheck source=/dev/null
. "$dir/env"
: "${SECUTIX_SYNC_TEST_WP_URL:?} ${SECUTIX_SYNC_TEST_WP_USER:?} ${SECUTIX_SYNC_TEST_WP_APP_PASSWORD:?}"
# The site answering is this instance's (not one answering for another database), and takes its credentials.
bash "$(dirname "${BASH_SOURCE[0]}")/wordpress.sh" check "$dir" ||
	{
		echo "wordpress-smoke.sh: FAIL: the WordPress of $dir/env is not the one to test (see above)" >&2
		exit 1
	}
readonly BASE=$SECUTIX_SYNC_TEST_WP_URL/wp-json
readonly CREDS=$SECUTIX_SYNC_TEST_WP_USER:$SECUTIX_SYNC_TEST_WP_APP_PASSWORD
tmp=$(mktemp -d)
created=()

cleanup() {
	local id
	for id in "${created[@]}"; do
		curl -s -o /dev/null -u "$CREDS" -X DELETE "$ROUTE/$id?force=true" || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "wordpress-smoke.sh: FAIL: $*" >&2
	[ -s "$tmp/body" ] && echo "last response body: $(head -c 2000 "$tmp/body")" >&2
	exit 1
}
pass() { echo "ok - $*"; }

# JSON reading with PHP (always there: WordPress needs it).
#   get FILE PATH     value at a dot path (a.0.b): strings raw, anything else as JSON
#   meta SENT GOT     every key of SENT's .meta must be in GOT's .meta with an equal value (numbers compare by value)
cat >"$tmp/json.php" <<'PHP'
<?php
function load( $file ) {
	$data = json_decode( file_get_contents( $file ), true );
	if ( JSON_ERROR_NONE !== json_last_error() ) {
		fwrite( STDERR, "$file is not JSON: " . json_last_error_msg() . "\n" );
		exit( 2 );
	}
	return $data;
}
if ( 'get' === $argv[1] ) {
	$value = load( $argv[2] );
	foreach ( '' === $argv[3] ? array() : explode( '.', $argv[3] ) as $part ) {
		$value = is_array( $value ) && array_key_exists( $part, $value ) ? $value[ $part ] : null;
	}
	echo is_string( $value ) ? $value : json_encode( $value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
	exit( 0 );
}
$sent = load( $argv[2] )['meta'];
$got  = load( $argv[3] )['meta'] ?? array();
$bad  = 0;
foreach ( $sent as $key => $want ) {
	$have  = array_key_exists( $key, $got ) ? $got[ $key ] : '(missing)';
	$equal = is_float( $want ) || is_float( $have )
		? is_numeric( $have ) && ! is_string( $have ) && $want == $have
		: $want === $have;
	if ( ! $equal ) {
		$flags = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE;
		echo "meta.$key: sent " . json_encode( $want, $flags ) . ', got ' . json_encode( $have, $flags ) . "\n";
		$bad = 1;
	}
}
exit( $bad );
PHP
get() { php "$tmp/json.php" get "$tmp/body" "$1"; }

# call METHOD URL [BODY_FILE] [CREDENTIALS or - for none]: response body in $tmp/body, status in $status.
call() {
	local args=(-s -o "$tmp/body" -w '%{http_code}' -X "$1")
	[ "${4:-}" = - ] || args+=(-u "${4:-$CREDS}")
	[ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$3")
	status=$(curl "${args[@]}" "$2") || fail "curl could not reach $2 (is the instance running?)"
}
expect_status() { [ "$status" = "$1" ] || fail "$2: HTTP $status, expected $1"; }
expect() { [ "$(get "$1")" = "$2" ] || fail "$3: .$1 is '$(get "$1")', expected '$2'"; }

# An id above 2^53 (not exact in a double) and different at each run.
pid=$((9007199254740993 + RANDOM * 32768 + RANDOM))
xid=secutix-$pid

# ------------------------------------------------------------------------------------------------ health, auth
call GET "$BASE/secutix-sync/v1/health"
expect_status 200 "GET health"
expect plugin secutix-sync "health"
expect supports_custom_fields true "health"
expect meta_keys.secutix_product_id string "health"
expect meta_keys.secutix_on_sale boolean "health"
expect meta_keys.secutix_price_min number "health"
# The REST path of the post type, as the daemon will build it, e.g. /wp/v2/event.
REST_PATH=/$(get rest_namespace)/$(get rest_base)
ROUTE=$BASE$REST_PATH
readonly REST_PATH ROUTE
pass "health: plugin $(get version), post type $(get post_type), REST route $ROUTE"

call GET "$BASE/secutix-sync/v1/health" "" -
expect_status 401 "GET health without credentials"
call GET "$BASE/secutix-sync/v1/health" "" "$SECUTIX_SYNC_TEST_WP_USER:wrong-application-password"
expect_status 401 "GET health with a wrong password"
printf '{"title":"must not exist"}' >"$tmp/req"
call POST "$ROUTE" "$tmp/req" "$SECUTIX_SYNC_TEST_WP_USER:wrong-application-password"
expect_status 401 "POST $ROUTE with a wrong password"
pass "401 without credentials and with a wrong password"

# ------------------------------------------------------------------------------------------------ create, read
# Quoted heredoc: backslashes reach WordPress as written (JSON-in-JSON, unicode escapes, a literal backslash).
sed "s/@PID@/$pid/g" >"$tmp/create.json" <<'JSON'
{
  "title": "Smoke test @PID@",
  "status": "publish",
  "content": "<p>Created by .ci/wordpress-smoke.sh</p>",
  "excerpt": "Smoke",
  "meta": {
    "secutix_external_id": "secutix-@PID@",
    "secutix_product_id": "@PID@",
    "secutix_product_code": "SMOKE-1",
    "secutix_content_hash": "hash-1",
    "secutix_schema_version": 1,
    "secutix_state": "PUBLISHED",
    "secutix_on_sale": true,
    "secutix_availability": "almost_full",
    "secutix_availability_code": 2,
    "secutix_booking_url": "https://tickets.example.org/fr/product/@PID@?a=1&b=<2>",
    "secutix_booking_urls": "{\"fr\":\"https://tickets.example.org/fr/product/@PID@\",\"de\":\"https://tickets.example.org/de/product/@PID@\"}",
    "secutix_price_min": 12.5,
    "secutix_price_max": 80.0,
    "secutix_currency": "CHF",
    "secutix_next_performance": "2026-03-01T20:00:00+01:00",
    "secutix_first_performance": "2026-03-01T20:00:00+01:00",
    "secutix_last_performance": "2026-06-30T19:30:00+02:00",
    "secutix_genre": "Th\u00e9\u00e2tre",
    "secutix_season": "2025/2026",
    "secutix_image_url": "https://images.example.org/p/@PID@.jpg",
    "secutix_performances": "[{\"id\":\"10228000000000001\",\"start\":\"2026-03-01T20:00:00+01:00\"}]",
    "secutix_entry": "{\"title\":{\"fr\":\"Th\u00e9\u00e2tre \\\"L'\u00c9t\u00e9\\\"\",\"de\":\"\u00dcber \\\\ Br\u00fccke \ud83c\udfad\"},\"html\":\"<b>&amp;</b>\"}",
    "secutix_synced_at": "2026-01-01T00:00:00Z"
  }
}
JSON
call POST "$ROUTE" "$tmp/create.json"
expect_status 201 "POST $ROUTE (create with every meta key)"
id=$(get id)
created+=("$id")
expect status publish "create"
php "$tmp/json.php" meta "$tmp/create.json" "$tmp/body" >&2 || fail "create answered other meta values than sent (above)"
call GET "$ROUTE/$id?context=edit"
expect_status 200 "GET $ROUTE/$id"
php "$tmp/json.php" meta "$tmp/create.json" "$tmp/body" >&2 || fail "read-back meta differs from what was sent (above)"
expect meta.secutix_product_id "$pid" "read back"
pass "create $xid as post $id; all $(grep -c '"secutix_' "$tmp/create.json") meta values read back equal (64-bit id as a string kept exactly)"

# ------------------------------------------------------------------------------------------------ lookup
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid"
expect_status 200 "lookup $xid"
expect id "$id" "lookup"
expect external_id "$xid" "lookup"
expect status publish "lookup"
expect content_hash hash-1 "lookup"
[[ "$(get modified_gmt)" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$ ]] || fail "lookup: modified_gmt '$(get modified_gmt)'"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid" "" -
expect_status 401 "lookup without credentials"
call GET "$BASE/secutix-sync/v1/lookup?external_id=secutix-0"
expect_status 404 "lookup of a missing id"
expect code not_found "lookup of a missing id"
pass "lookup finds post $id (publish), 404 not_found for a missing id, 401 without credentials"

# ------------------------------------------------------------------------------------------------ update
cat >"$tmp/update.json" <<'JSON'
{
  "status": "draft",
  "title": "Smoke test (updated)",
  "meta": {
    "secutix_content_hash": "hash-2",
    "secutix_on_sale": false,
    "secutix_availability": "sold_out",
    "secutix_availability_code": 3,
    "secutix_price_max": 95.25
  }
}
JSON
call POST "$ROUTE/$id" "$tmp/update.json"
expect_status 200 "POST $ROUTE/$id (update)"
call GET "$ROUTE/$id?context=edit"
php "$tmp/json.php" meta "$tmp/update.json" "$tmp/body" >&2 || fail "updated meta differs (above)"
expect title.raw "Smoke test (updated)" "update"
expect meta.secutix_genre "Théâtre" "update (a key not sent must keep its value)"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid"
expect_status 200 "lookup of a draft"
expect status draft "lookup after update"
expect content_hash hash-2 "lookup after update"
pass "update to draft with new meta; lookup finds the draft with the new hash"

# ------------------------------------------------------------------------------------------------ no second post
printf '{"title":"second","status":"publish","meta":{"secutix_external_id":"%s","secutix_content_hash":"hash-x"}}' \
	"$xid" >"$tmp/dup.json"
call POST "$ROUTE" "$tmp/dup.json"
[ "$status" = 201 ] && created+=("$(get id)")
expect_status 409 "create of a second post for $xid"
expect code secutix_sync_exists "create of a second post"
expect data.id "$id" "create of a second post (the existing post's id)"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid"
expect duplicates '[]' "lookup after a refused second create"
expect content_hash hash-2 "lookup after a refused second create (nothing written)"
pass "a second create for $xid: 409 secutix_sync_exists naming post $id, nothing written"

# ------------------------------------------------------------------------------------------------ bad meta
printf '{"title":"bad","status":"publish","meta":{"secutix_external_id":"%s-bad","secutix_availability":"maybe"}}' \
	"$xid" >"$tmp/bad.json"
call POST "$ROUTE" "$tmp/bad.json"
expect_status 400 "create with secutix_availability=maybe"
expect code rest_not_in_enum "create with a bad meta value"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid-bad"
[ "$status" = 404 ] || {
	created+=("$(get id)")
	fail "a create refused with 400 still left post $(get id) behind"
}
pass "create with a bad meta value: 400 rest_not_in_enum and no post written"

# ------------------------------------------------------------------------------------------------ batch API
cat >"$tmp/batch.json" <<JSON
{"requests": [
  {"method": "POST", "path": "$REST_PATH", "body": {"title": "Batch A", "status": "publish",
    "meta": {"secutix_external_id": "$xid-a", "secutix_content_hash": "hash-a"}}},
  {"method": "POST", "path": "$REST_PATH", "body": {"title": "Batch B", "status": "draft",
    "meta": {"secutix_external_id": "$xid-b", "secutix_content_hash": "hash-b"}}}
]}
JSON
call POST "$BASE/batch/v1" "$tmp/batch.json"
expect_status 207 "POST /batch/v1 with 2 creates"
expect responses.0.status 201 "batch response 0"
expect responses.1.status 201 "batch response 1"
id_a=$(get responses.0.body.id)
id_b=$(get responses.1.body.id)
created+=("$id_a" "$id_b")
expect responses.0.body.meta.secutix_external_id "$xid-a" "batch response 0"
expect responses.1.body.status draft "batch response 1"
call GET "$BASE/secutix-sync/v1/lookup?external_ids=$xid-a,$xid-b,secutix-0"
expect_status 200 "batch lookup"
expect 0.id "$id_a" "batch lookup"
expect 1.id "$id_b" "batch lookup"
expect 1.content_hash hash-b "batch lookup"
expect 2 null "batch lookup (the missing id has no item)"
pass "batch/v1: 2 creates answered 207 with 201 each (posts $id_a, $id_b); batch lookup lists both, not the missing one"

# ------------------------------------------------------------------------------------------------ trash, delete
call DELETE "$ROUTE/$id"
expect_status 200 "DELETE $ROUTE/$id (to the trash)"
expect status trash "trash"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid"
expect_status 200 "lookup of a trashed post"
expect status trash "lookup of a trashed post"
call DELETE "$ROUTE/$id?force=true"
expect_status 200 "DELETE $ROUTE/$id?force=true"
expect deleted true "delete"
call GET "$BASE/secutix-sync/v1/lookup?external_id=$xid"
expect_status 404 "lookup after delete"
pass "trash: lookup still finds it (status trash); delete: lookup answers 404"

# ------------------------------------------------------------------------------------------------ PHP log
if [ -f "$dir/debug.log" ] && grep -n 'secutix-sync\.php' "$dir/debug.log" >&2; then
	fail "the mu-plugin logged notices or errors in $dir/debug.log (above)"
fi
pass "no PHP notice from the mu-plugin"
echo "wordpress-smoke.sh: all checks passed"
