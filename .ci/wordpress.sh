#!/usr/bin/env bash
# A real WordPress on loopback for tests, from Debian 12 packages (no download from the internet).
#
#   .ci/wordpress.sh install        apt-get the packages (idempotent; nothing is started during install)
#   .ci/wordpress.sh start [DIR]    fresh MariaDB + fresh WordPress + PHP server on 127.0.0.1:<free port>,
#                                   then writes DIR/env (source it) and prints it
#   .ci/wordpress.sh check [DIR]    the site at DIR/env's URL is the one `start DIR` made (its database) and
#                                   takes DIR/env's credentials; a clear error otherwise
#   .ci/wordpress.sh stop [DIR]     stop the PHP server (with its workers) and MariaDB, remove the configuration
#
# DIR defaults to /tmp/secutix-sync-wp and must be traversable by the `mysql` user.
# `start` on a running instance stops it and starts a clean one: every `start` gives an empty site
# (new database, new application password, possibly a new port), so always re-read DIR/env after it.
# Besides the companion plugin, `start` installs .ci/wordpress-editor-fields.php (a meta key and a taxonomy that
# stand for an agency's own fields, so tests can play the editor).
# Needs root (apt, /etc/wordpress, mariadbd as user mysql). Several instances may run on one machine (other
# checkouts' CI, a developer's own WordPress): each `start` has a configuration of its own,
# /etc/wordpress/config-secutix-sync-<run id>.php, that Debian's wp-config.php is told to read through
# $_SERVER['WORDPRESS_CONFIG'] (instead of config-<host>.php, shared by every site on 127.0.0.1), and its own
# wp-content (DIR/wp-content: plugins of this checkout, uploads). The site's name carries the run id; DIR/env
# names it (SECUTIX_SYNC_TEST_WP_SITE_NAME) so that `check`, the smoke test and the Rust tests notice a site
# that answers for another database.
#
# Facts behind the choices: /work/shared/reference/wordpress-local.md and contrib/wordpress/README.md.
set -euo pipefail

readonly PACKAGES=(wordpress wordpress-theme-twentytwentythree mariadb-server mariadb-client php-cli php-mysql curl)
readonly WP_ROOT=/usr/share/wordpress
# Debian's shared wp-content: its themes, plugins and languages are linked into each instance's own.
readonly WP_CONTENT=/var/lib/wordpress/wp-content
readonly WP_CONFIG_DIR=/etc/wordpress
readonly WP_USER=admin
readonly DB_NAME=secutix_sync_wp
readonly DB_USER=secutix_sync_wp
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT

log() { printf 'wordpress.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# Seconds since `$1` (an $EPOCHREALTIME value), with millisecond precision.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

require_root() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, /etc/wordpress and mariadbd as user mysql need it); try: sudo $0 $*"
}

# ---------------------------------------------------------------------------------------------------- install

cmd_install() {
	require_root install
	local t0=$EPOCHREALTIME missing=() pkg
	for pkg in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "install: all packages already installed (${PACKAGES[*]}) [$(elapsed "$t0") s]"
		return
	fi
	log "install: missing: ${missing[*]}"

	# Package scripts would start apache2 on :80 and MariaDB on :3306. A policy-rc.d that exits 101 forbids it.
	# Keep one that is already there (Docker images ship one); otherwise add ours and remove it on any exit.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\n# temporary, from secutix-sync .ci/wordpress.sh install\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	log "install: apt-get update done [$(elapsed "$t0") s]"
	# unsafe-io: dpkg skips its fsync calls, a large share of the time; a CI machine does not survive a crash anyway.
	apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io "${PACKAGES[@]}" >/dev/null
	log "install: done [$(elapsed "$t0") s]"
}

# ---------------------------------------------------------------------------------------------------- stop

# True when process `$1` exists and is not a zombie. Our daemons outlive the shell that started them, so their
# parent is PID 1, which may reap them only seconds after they exit: `kill -0` alone would wait for that.
running() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# True when pid file `$1` names a running process whose command is `$2`: a stale file never kills a stranger.
pid_alive() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# Stops the process named in pid file `$1` if it is a running `$2`: SIGTERM, up to `$3` seconds, then SIGKILL.
# With `$4` = group, signals its whole process group. Removes the pid file.
stop_pidfile() {
	local pidfile=$1 comm=$2 wait_s=$3 t0=$EPOCHREALTIME pid target i
	if pid_alive "$pidfile" "$comm"; then
		pid=$(cat "$pidfile")
		target=$pid
		[ "${4:-}" = group ] && target=-$pid
		kill -TERM -- "$target" 2>/dev/null || true
		for ((i = 0; i < wait_s * 10; i++)); do
			running "$pid" || break
			sleep 0.1
		done
		if running "$pid"; then
			log "stop: $comm (pid $pid) did not exit after ${wait_s} s, sending SIGKILL"
			kill -KILL -- "$target" 2>/dev/null || true
		fi
		log "stop: $comm (pid $pid${4:+ and its process group}) stopped [$(elapsed "$t0") s]"
	fi
	rm -f "$pidfile"
}

cmd_stop() {
	local dir=$1 t0=$EPOCHREALTIME
	# php -S was started by setsid: it leads its own process group, and its workers
	# (PHP_CLI_SERVER_WORKERS) are in that group. Killing the parent alone leaves them serving.
	stop_pidfile "$dir/php.pid" php 10 group
	stop_pidfile "$dir/mysql/mariadbd.pid" mariadbd 60
	# This instance's configuration, and only if it is this instance's (it names DIR).
	local name config
	if [ -s "$dir/config-name" ]; then
		name=$(cat "$dir/config-name")
		config=$WP_CONFIG_DIR/config-$name.php
		if [ -f "$config" ] && grep -qF "// Instance folder: $dir" "$config"; then
			rm -f "$config"
		fi
		rm -f "$dir/config-name"
	fi
	log "stop: done [$(elapsed "$t0") s]"
}

# ---------------------------------------------------------------------------------------------------- start

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# A port that is free right now on 127.0.0.1 (the kernel's choice for port 0).
free_port() {
	# shellcheck disable=SC2016 # PHP code, not shell
	php -r '$s = stream_socket_server("tcp://127.0.0.1:0"); $n = stream_socket_get_name($s, false); echo substr($n, strrpos($n, ":") + 1);'
}

start_mariadb() {
	local db=$1 t0=$EPOCHREALTIME i
	rm -rf "$db"
	# A temporary folder of its own: at start-up MariaDB removes the `#sql…` files it finds in its tmpdir, so two
	# instances sharing /tmp (two runs started together) delete each other's temporary tables.
	mkdir -p "$db/tmp"
	chown mysql:mysql "$db" "$db/tmp"
	runuser -u mysql -- test -w "$db" ||
		die "user mysql cannot write $db: choose a DIR whose parents are world-traversable (e.g. under /tmp)"
	mariadb-install-db --no-defaults --user=mysql --datadir="$db/data" --tmpdir="$db/tmp" \
		--auth-root-authentication-method=socket --skip-test-db >"$db/install-db.log" 2>&1 ||
		die "mariadb-install-db failed, see $db/install-db.log"
	# No TCP port: WordPress reaches it through the socket. Durability is not needed for a test database.
	setsid mariadbd --no-defaults --user=mysql --datadir="$db/data" --tmpdir="$db/tmp" --socket="$db/mysqld.sock" \
		--pid-file="$db/mariadbd.pid" --log-error="$db/error.log" --skip-networking --skip-log-bin \
		--innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
		</dev/null >/dev/null 2>&1 &
	for ((i = 0; i < 300; i++)); do
		mariadb-admin --no-defaults --socket="$db/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
		running $! || die "mariadbd exited at start-up; last lines of $db/error.log: $(tail -n 5 "$db/error.log")"
		sleep 0.1
	done
	[ "$i" -lt 300 ] || die "mariadbd did not answer on $db/mysqld.sock within 30 s, see $db/error.log"
	log "start: mariadbd up on $db/mysqld.sock [$(elapsed "$t0") s]"
}

# The configuration of this instance only: /etc/wordpress/config-<name>.php, read because the router and the
# install scripts set $_SERVER['WORDPRESS_CONFIG'] to <name>.
write_wp_config() {
	local dir=$1 port=$2 db_password=$3 name=$4 key
	mkdir -p "$WP_CONFIG_DIR"
	(
		umask 077
		{
			echo '<?php'
			echo '// Written by secutix-sync .ci/wordpress.sh start; removed by stop.'
			echo "// Instance folder: $dir"
			echo "define( 'DB_NAME', '$DB_NAME' );"
			echo "define( 'DB_USER', '$DB_USER' );"
			echo "define( 'DB_PASSWORD', '$db_password' );"
			echo "define( 'DB_HOST', 'localhost:$dir/mysql/mysqld.sock' );"
			echo "define( 'WP_HOME', 'http://127.0.0.1:$port' );"
			echo "define( 'WP_SITEURL', 'http://127.0.0.1:$port' );"
			echo "// This instance's plugins and uploads, not the machine-wide $WP_CONTENT."
			echo "define( 'WP_CONTENT_DIR', '$dir/wp-content' );"
			echo "// Application Passwords are refused over plain HTTP unless the environment is 'local'."
			echo "define( 'WP_ENVIRONMENT_TYPE', 'local' );"
			echo "// No cron loopback requests, no update checks, no outbound HTTP: CI has no internet."
			echo "define( 'DISABLE_WP_CRON', true );"
			echo "define( 'AUTOMATIC_UPDATER_DISABLED', true );"
			echo "define( 'WP_HTTP_BLOCK_EXTERNAL', true );"
			echo "define( 'WP_DEBUG', true );"
			echo "define( 'WP_DEBUG_DISPLAY', false );"
			echo "define( 'WP_DEBUG_LOG', '$dir/debug.log' );"
			if [ -n "${SECUTIX_SYNC_POST_TYPE:-}" ]; then
				echo "define( 'SECUTIX_SYNC_POST_TYPE', '$SECUTIX_SYNC_POST_TYPE' );"
			fi
			for key in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
				echo "define( '$key', '$(random_hex 32)' );"
			done
		} >"$WP_CONFIG_DIR/config-$name.php"
	)
}

# DIR/wp-content: Debian's themes, plugins and languages linked, this checkout's must-use plugins copied, uploads.
prepare_content() {
	local dir=$1 sub
	rm -rf "$dir/wp-content"
	mkdir -p "$dir/wp-content/mu-plugins" "$dir/wp-content/uploads"
	for sub in themes plugins languages; do
		ln -s "$WP_CONTENT/$sub" "$dir/wp-content/$sub"
	done
	cp "$REPO_ROOT/contrib/wordpress/secutix-sync.php" "$dir/wp-content/mu-plugins/secutix-sync.php"
	# Test sites only: an agency's own meta and taxonomy on the post type, for the tests' "editor" edits.
	cp "$REPO_ROOT/.ci/wordpress-editor-fields.php" "$dir/wp-content/mu-plugins/secutix-sync-test-editor-fields.php"
}

# Installs WordPress from PHP CLI (as site `$3`, configuration `$2`) and prints a new application password for
# $WP_USER on stdout.
install_wordpress() {
	local dir=$1 name=$2 site=$3 t0=$EPOCHREALTIME
	# Step 1: the install itself. Without WP_INSTALLING an uninstalled site redirects to the installer and exits 0.
	cat >"$dir/wp-install.php" <<'PHP'
<?php
$_SERVER['HTTP_HOST'] = '127.0.0.1';
// Debian's wp-config.php reads /etc/wordpress/config-<WORDPRESS_CONFIG>.php rather than config-<host>.php.
$_SERVER['WORDPRESS_CONFIG'] = getenv( 'WORDPRESS_CONFIG' );
define( 'WP_INSTALLING', true );
require '/usr/share/wordpress/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install( $argv[3], $argv[1], $argv[2], true, '', wp_generate_password( 24 ) );
if ( empty( $result['user_id'] ) ) {
	fwrite( STDERR, "wp_install() did not return a user id\n" );
	exit( 1 );
}
PHP
	# Step 2: a normal load (the mu-plugin registers its post type, so that gets rewrite rules), then pretty
	# permalinks so /wp-json/ routes, and an application password for the REST API.
	cat >"$dir/wp-setup.php" <<'PHP'
<?php
$_SERVER['HTTP_HOST'] = '127.0.0.1';
$_SERVER['WORDPRESS_CONFIG'] = getenv( 'WORDPRESS_CONFIG' );
require '/usr/share/wordpress/wp-load.php';
update_option( 'permalink_structure', '/%postname%/' );
flush_rewrite_rules( false );
$user = get_user_by( 'login', $argv[1] );
if ( ! $user ) {
	fwrite( STDERR, "user {$argv[1]} not found after install\n" );
	exit( 1 );
}
$created = WP_Application_Passwords::create_new_application_password( $user->ID, array( 'name' => 'secutix-sync-ci' ) );
if ( is_wp_error( $created ) ) {
	fwrite( STDERR, 'create_new_application_password: ' . $created->get_error_message() . "\n" );
	exit( 1 );
}
echo $created[0];
PHP
	# The must-use plugins are in DIR/wp-content already (prepare_content): they load during the install too.
	WORDPRESS_CONFIG=$name php "$dir/wp-install.php" "$WP_USER" "$WP_USER@example.invalid" "$site" \
		>"$dir/wp-install.log" 2>&1 ||
		die "WordPress install failed, see $dir/wp-install.log and $dir/debug.log"
	WORDPRESS_CONFIG=$name php "$dir/wp-setup.php" "$WP_USER" 2>"$dir/wp-setup.log" ||
		die "WordPress setup (permalinks, application password) failed, see $dir/wp-setup.log and $dir/debug.log"
	log "start: WordPress installed (mu-plugins in $dir/wp-content), application password created [$(elapsed "$t0") s]"
}

write_router() {
	cat >"$1/router.php" <<'PHP'
<?php
// Router for `php -S`: files under the WordPress tree are served as they are, /wp-content/ comes from this
// instance's folder (its WP_CONTENT_DIR), everything else goes to index.php (pretty permalinks, /wp-json/).
// This instance's configuration, /etc/wordpress/config-<WORDPRESS_CONFIG>.php, whatever the Host header says.
$config = getenv( 'WORDPRESS_CONFIG' );
if ( ! is_string( $config ) || '' === $config ) {
	http_response_code( 500 );
	echo "router.php: WORDPRESS_CONFIG is not set: start this server with .ci/wordpress.sh start\n";
	return true;
}
$_SERVER['WORDPRESS_CONFIG'] = $config;
$path = urldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
if ( 0 === strpos( $path, '/wp-content/' ) && false === strpos( $path, '..' ) ) {
	$file = __DIR__ . $path;
	if ( is_file( $file ) && 'php' !== pathinfo( $file, PATHINFO_EXTENSION ) ) {
		header( 'Content-Type: ' . ( mime_content_type( $file ) ?: 'application/octet-stream' ) );
		readfile( $file );
		return true;
	}
}
if ( '/' !== $path && file_exists( $_SERVER['DOCUMENT_ROOT'] . $path ) ) {
	return false;
}
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $_SERVER['DOCUMENT_ROOT'] . '/index.php';
chdir( $_SERVER['DOCUMENT_ROOT'] );
require 'index.php';
PHP
}

# Starts `php -S` on port `$2`; returns 1 (and leaves nothing running) if it did not come up.
start_php() {
	local dir=$1 port=$2 name=$3 pid i
	: >"$dir/php-server.log"
	# OPcache is on for php -S (opcache.enable_cli covers the `cli` SAPI only, not `cli-server`) and by default
	# looks at file times every 2 s: revalidate at each request so an edited mu-plugin is seen at once.
	WORDPRESS_CONFIG=$name PHP_CLI_SERVER_WORKERS=4 setsid php -d opcache.revalidate_freq=0 -S "127.0.0.1:$port" -t "$WP_ROOT" "$dir/router.php" \
		</dev/null >>"$dir/php-server.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/php.pid"
	for ((i = 0; i < 200; i++)); do
		running "$pid" || return 1
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/wp-json/")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

cmd_start() {
	require_root start
	local dir=$1 t0=$EPOCHREALTIME db_password port app_password attempt name site
	if ! command -v mariadbd >/dev/null || [ ! -f "$WP_ROOT/wp-load.php" ]; then
		die "packages missing: run '$0 install' first"
	fi
	[ -f "$REPO_ROOT/contrib/wordpress/secutix-sync.php" ] || die "mu-plugin not found at $REPO_ROOT/contrib/wordpress/secutix-sync.php"
	mkdir -p "$dir"
	chmod 755 "$dir"
	cmd_stop "$dir"
	rm -f "$dir/env" "$dir/debug.log"
	# A name of this run's own (letters, digits and dashes, as Debian's wp-config.php requires), for its
	# configuration file and its site's name.
	name=secutix-sync-ci-$(random_hex 6)
	while [ -e "$WP_CONFIG_DIR/config-$name.php" ]; do name=secutix-sync-ci-$(random_hex 6); done
	site="secutix-sync test site $name"
	echo "$name" >"$dir/config-name"
	# A start that fails half-way leaves nothing running.
	trap '[ -s "$dir/env" ] || cmd_stop "$dir"' EXIT

	start_mariadb "$dir/mysql"
	db_password=$(random_hex 16)
	mariadb --no-defaults --socket="$dir/mysql/mysqld.sock" -uroot <<SQL
CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$db_password';
GRANT ALL PRIVILEGES ON $DB_NAME.* TO '$DB_USER'@'localhost';
SQL

	port=$(free_port)
	write_wp_config "$dir" "$port" "$db_password" "$name"
	prepare_content "$dir"
	app_password=$(install_wordpress "$dir" "$name" "$site")
	write_router "$dir"

	local t1=$EPOCHREALTIME
	for attempt in 1 2 3 4 5; do
		start_php "$dir" "$port" "$name" && break
		# Another process took the port between free_port and bind: pick another and rewrite the config.
		stop_pidfile "$dir/php.pid" php 5 group
		[ "$attempt" -lt 5 ] || die "PHP server did not answer on /wp-json/, see $dir/php-server.log and $dir/debug.log"
		log "start: PHP server did not come up on port $port, trying another"
		port=$(free_port)
		write_wp_config "$dir" "$port" "$db_password" "$name"
	done
	log "start: PHP server up on 127.0.0.1:$port (pid $(cat "$dir/php.pid"), 4 workers) [$(elapsed "$t1") s]"

	(
		umask 077
		cat >"$dir/env" <<ENV
export SECUTIX_SYNC_TEST_WP_URL=http://127.0.0.1:$port
export SECUTIX_SYNC_TEST_WP_USER=$WP_USER
export SECUTIX_SYNC_TEST_WP_APP_PASSWORD='$app_password'
export SECUTIX_SYNC_TEST_WP_SITE_NAME='$site'
ENV
	)
	# In a subshell: a failed check leaves nothing running (no env, so the trap stops the instance).
	(cmd_check "$dir") >/dev/null || {
		rm -f "$dir/env"
		die "start: the new site fails its own check (see above)"
	}
	log "start: done [$(elapsed "$t0") s]; source $dir/env"
	cat "$dir/env"
}

# ---------------------------------------------------------------------------------------------------- check

# The site at DIR/env's URL is the one `start DIR` made: its REST index names the site of DIR/env (the name is
# in the database, so a server that reads another instance's configuration shows another one), and it takes
# DIR/env's application password. Without this, a site answering for another database fails later with a 401
# "Sorry, you are not allowed to …" that points at the credentials.
cmd_check() {
	local dir=$1 body name status
	[ -r "$dir/env" ] || die "check: $dir/env not found: run '$0 start $dir' first"
	# shellcheck source=/dev/null
	. "$dir/env"
	: "${SECUTIX_SYNC_TEST_WP_URL:?} ${SECUTIX_SYNC_TEST_WP_USER:?} ${SECUTIX_SYNC_TEST_WP_APP_PASSWORD:?}"
	[ -n "${SECUTIX_SYNC_TEST_WP_SITE_NAME:-}" ] ||
		die "check: $dir/env does not name its site (SECUTIX_SYNC_TEST_WP_SITE_NAME): it comes from an older $0; run '$0 start $dir' again"
	body=$(curl -s --max-time 20 "$SECUTIX_SYNC_TEST_WP_URL/wp-json/") ||
		die "check: no WordPress answers at $SECUTIX_SYNC_TEST_WP_URL ($dir/env): start it with '$0 start $dir'"
	# shellcheck disable=SC2016 # PHP code, not shell
	name=$(printf '%s' "$body" | php -r '$d = json_decode( stream_get_contents( STDIN ), true ); echo is_array( $d ) && is_string( $d["name"] ?? null ) ? $d["name"] : "";')
	[ -n "$name" ] ||
		die "check: $SECUTIX_SYNC_TEST_WP_URL/wp-json/ is not a WordPress REST index (it starts with: $(printf '%s' "$body" | head -c 200)); is another server on that port?"
	[ "$name" = "$SECUTIX_SYNC_TEST_WP_SITE_NAME" ] ||
		die "check: the WordPress at $SECUTIX_SYNC_TEST_WP_URL answers for another database: its site is '$name', while '$0 start $dir' created '$SECUTIX_SYNC_TEST_WP_SITE_NAME'. Another WordPress on this machine took over this address or this instance's configuration; its credentials are not the ones in $dir/env (a 401 would follow). Run '$0 start $dir' again and source $dir/env"
	status=$(curl -s -o /dev/null --max-time 20 -w '%{http_code}' -u "$SECUTIX_SYNC_TEST_WP_USER:$SECUTIX_SYNC_TEST_WP_APP_PASSWORD" \
		"$SECUTIX_SYNC_TEST_WP_URL/wp-json/wp/v2/users/me")
	[ "$status" = 200 ] ||
		die "check: '$name' at $SECUTIX_SYNC_TEST_WP_URL refuses the application password of $dir/env (HTTP $status); run '$0 start $dir' again"
	log "check: $SECUTIX_SYNC_TEST_WP_URL is '$name' and takes the credentials of $dir/env"
}

# ---------------------------------------------------------------------------------------------------- main

usage() {
	sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

dir=$(realpath -m "${2:-/tmp/secutix-sync-wp}")
case "${1:-}" in
install) cmd_install ;;
start) cmd_start "$dir" ;;
check) cmd_check "$dir" ;;
stop) cmd_stop "$dir" ;;
*) usage ;;
esac
