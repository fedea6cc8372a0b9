<?php
/**
 * Plugin Name: secutix-sync
 * Description: Companion of the secutix-sync daemon: the post type it writes, its meta in the REST API, and a lookup of entries by external id so upserts never create duplicates.
 * Version:     1.1.0
 * Requires at least: 5.6
 * Requires PHP: 7.4
 * Text Domain: secutix-sync
 *
 * A must-use plugin: copy this one file into wp-content/mu-plugins/ (on Debian's package:
 * /var/lib/wordpress/wp-content/mu-plugins/). See README.md next to it.
 *
 * @package secutix-sync
 */

defined( 'ABSPATH' ) || exit;

/** Reported by the health route; bump it when the meta keys or routes change. */
const SECUTIX_SYNC_VERSION = '1.1.0';

/** REST namespace of the routes below. */
const SECUTIX_SYNC_REST_NAMESPACE = 'secutix-sync/v1';

/** Largest number of ids one batch lookup accepts (one SQL query with that many placeholders). */
const SECUTIX_SYNC_MAX_LOOKUP_IDS = 100;

/**
 * The post type the daemon writes: `event` unless wp-config.php defines SECUTIX_SYNC_POST_TYPE.
 *
 * @return string
 */
function secutix_sync_post_type() {
	return defined( 'SECUTIX_SYNC_POST_TYPE' ) ? sanitize_key( SECUTIX_SYNC_POST_TYPE ) : 'event';
}

/**
 * The meta keys the daemon writes, with their REST schema.
 *
 * Ids are strings: SecuTix ids are 64-bit and JSON numbers above 2^53 are not safe in every client.
 * JSON-valued keys (booking URLs per language, performances, the whole entry) are strings holding JSON.
 *
 * @return array<string, array> Meta key => schema (`type`, `description`, optional `enum`, `minimum`, `maximum`).
 */
function secutix_sync_meta_keys() {
	$keys = array(
		'secutix_external_id'       => array(
			'type'        => 'string',
			'description' => 'Stable id of the entry, "secutix-<productId>".',
		),
		'secutix_product_id'        => array(
			'type'        => 'string',
			'description' => 'SecuTix product id (64-bit, kept as a string).',
		),
		'secutix_product_code'      => array(
			'type'        => 'string',
			'description' => 'SecuTix product code.',
		),
		'secutix_content_hash'      => array(
			'type'        => 'string',
			'description' => 'Hash of the entry as last pushed; equal hash means nothing to push.',
		),
		'secutix_schema_version'    => array(
			'type'        => 'integer',
			'description' => 'Version of the entry format.',
		),
		'secutix_state'             => array(
			'type'        => 'string',
			'description' => 'SecuTix product state.',
		),
		'secutix_on_sale'           => array(
			'type'        => 'boolean',
			'description' => 'Whether the product is on sale.',
		),
		'secutix_availability'      => array(
			'type'        => 'string',
			'description' => 'Rolled-up availability; unknown = on sale, not fetched yet.',
			'enum'        => array( 'available', 'almost_full', 'sold_out', 'not_on_sale', 'unknown' ),
		),
		'secutix_availability_code' => array(
			'type'        => 'integer',
			'description' => 'Availability as a code: 0 not on sale or unknown, 1 available, 2 almost full, 3 sold out.',
			'minimum'     => 0,
			'maximum'     => 3,
		),
		'secutix_booking_url'       => array(
			'type'        => 'string',
			'description' => 'Booking link in the default language.',
		),
		'secutix_booking_urls'      => array(
			'type'        => 'string',
			'description' => 'Booking links per language, a JSON object language => URL.',
		),
		'secutix_price_min'         => array(
			'type'        => 'number',
			'description' => 'Lowest price, in currency units.',
		),
		'secutix_price_max'         => array(
			'type'        => 'number',
			'description' => 'Highest price, in currency units.',
		),
		'secutix_currency'          => array(
			'type'        => 'string',
			'description' => 'ISO 4217 currency of the prices.',
		),
		'secutix_next_performance'  => array(
			'type'        => 'string',
			'description' => 'Start of the next performance, ISO 8601 with offset.',
		),
		'secutix_first_performance' => array(
			'type'        => 'string',
			'description' => 'Start of the first performance, ISO 8601 with offset.',
		),
		'secutix_last_performance'  => array(
			'type'        => 'string',
			'description' => 'Start of the last performance, ISO 8601 with offset.',
		),
		'secutix_genre'             => array(
			'type'        => 'string',
			'description' => 'Genre.',
		),
		'secutix_season'            => array(
			'type'        => 'string',
			'description' => 'Season.',
		),
		'secutix_image_url'         => array(
			'type'        => 'string',
			'description' => 'URL of the main image.',
		),
		'secutix_performances'      => array(
			'type'        => 'string',
			'description' => 'Performances, a JSON array.',
		),
		'secutix_entry'             => array(
			'type'        => 'string',
			'description' => 'The whole entry, JSON.',
		),
		'secutix_synced_at'         => array(
			'type'        => 'string',
			'description' => 'When the daemon last pushed this entry, ISO 8601.',
		),
	);

	/**
	 * Filters the meta keys registered for the secutix-sync post type.
	 *
	 * @param array<string, array> $keys Meta key => REST schema (`type` and `description` at least).
	 */
	return apply_filters( 'secutix_sync_meta_keys', $keys );
}

/**
 * Registers the post type (unless a theme or plugin already did) and its meta.
 *
 * Runs on `init` at priority 20, after themes and plugins registered theirs at the default priority.
 */
function secutix_sync_register() {
	$post_type = secutix_sync_post_type();

	if ( post_type_exists( $post_type ) ) {
		// Someone else owns the post type: keep it, only make sure the daemon can write it and its meta.
		add_post_type_support( $post_type, 'custom-fields' );
		$object = get_post_type_object( $post_type );
		if ( ! $object->show_in_rest ) {
			// REST routes are built later, on rest_api_init, from these properties.
			$object->show_in_rest = true;
		}
	} else {
		$args = array(
			'labels'       => array(
				'name'          => __( 'Events', 'secutix-sync' ),
				'singular_name' => __( 'Event', 'secutix-sync' ),
			),
			'public'       => true,
			'has_archive'  => true,
			'show_in_rest' => true,
			'rest_base'    => $post_type,
			'menu_icon'    => 'dashicons-tickets-alt',
			'supports'     => array( 'title', 'editor', 'excerpt', 'thumbnail', 'custom-fields' ),
		);

		/**
		 * Filters the arguments of the post type secutix-sync registers when no one else did.
		 *
		 * @param array  $args      Arguments for register_post_type().
		 * @param string $post_type Post type key.
		 */
		register_post_type( $post_type, apply_filters( 'secutix_sync_post_type_args', $args, $post_type ) );
	}

	// The order matters: core REST saves meta in registration order, so secutix_external_id comes first.
	foreach ( secutix_sync_meta_keys() as $key => $schema ) {
		register_post_meta(
			$post_type,
			$key,
			array(
				'type'          => $schema['type'],
				'description'   => $schema['description'],
				'single'        => true,
				'show_in_rest'  => array( 'schema' => $schema ),
				'auth_callback' => 'secutix_sync_can_edit_meta',
			)
		);
	}

	add_filter( "rest_pre_insert_{$post_type}", 'secutix_sync_validate_meta', 10, 2 );
}
add_action( 'init', 'secutix_sync_register', 20 );

/**
 * Validates the secutix meta of a REST create or update before the post is written, and refuses to
 * create a second post for an external id.
 *
 * Core REST inserts the post first and validates meta afterwards: a create with one bad meta value
 * answers 400 yet leaves a new post behind, and the daemon's retry would make a duplicate. Checking
 * here makes such a request write nothing.
 *
 * A create whose secutix_external_id a post already holds (any status, trash included) answers
 * 409 `secutix_sync_exists` with that post's id in `data.id`: the daemon then updates that post. This
 * closes the window between the daemon's lookup and its create (a retried create whose first attempt
 * was still running, a second daemon on the same site).
 *
 * @param stdClass|WP_Error $prepared_post Post about to be written.
 * @param WP_REST_Request   $request       Request.
 * @return stdClass|WP_Error
 */
function secutix_sync_validate_meta( $prepared_post, WP_REST_Request $request ) {
	$meta = $request['meta'];
	if ( is_wp_error( $prepared_post ) || ! is_array( $meta ) ) {
		return $prepared_post;
	}
	if ( empty( $prepared_post->ID ) && isset( $meta['secutix_external_id'] ) && is_string( $meta['secutix_external_id'] ) ) {
		$existing = secutix_sync_find( array( $meta['secutix_external_id'] ) );
		if ( $existing ) {
			$post = reset( $existing );
			return new WP_Error(
				'secutix_sync_exists',
				/* translators: 1: post id, 2: external id */
				sprintf( __( 'Post %1$d already holds secutix_external_id %2$s; update it instead.', 'secutix-sync' ), $post['id'], $post['external_id'] ),
				array(
					'status'      => 409,
					'id'          => $post['id'],
					'post_status' => $post['status'],
				)
			);
		}
	}
	foreach ( secutix_sync_meta_keys() as $key => $schema ) {
		// A null value deletes the meta: nothing to validate.
		if ( ! isset( $meta[ $key ] ) ) {
			continue;
		}
		$valid = rest_validate_value_from_schema( $meta[ $key ], $schema, 'meta.' . $key );
		if ( is_wp_error( $valid ) ) {
			$valid->add_data( array( 'status' => 400 ) );
			return $valid;
		}
	}
	return $prepared_post;
}

/**
 * Meta auth callback: only users who may edit the post may write its secutix meta.
 *
 * @param bool   $allowed  Whether the user can edit the meta (ignored).
 * @param string $meta_key Meta key.
 * @param int    $post_id  Post id.
 * @param int    $user_id  User id.
 * @return bool
 */
function secutix_sync_can_edit_meta( $allowed, $meta_key, $post_id, $user_id ) {
	return user_can( $user_id, 'edit_post', $post_id );
}

/**
 * REST permission of the plugin's routes: the post type's `edit_posts` capability.
 *
 * @return bool
 */
function secutix_sync_rest_permission() {
	$object = get_post_type_object( secutix_sync_post_type() );
	return current_user_can( $object ? $object->cap->edit_posts : 'edit_posts' );
}

/**
 * Registers the lookup and health routes.
 */
function secutix_sync_register_routes() {
	register_rest_route(
		SECUTIX_SYNC_REST_NAMESPACE,
		'/lookup',
		array(
			'methods'             => WP_REST_Server::READABLE,
			'callback'            => 'secutix_sync_rest_lookup',
			'permission_callback' => 'secutix_sync_rest_permission',
			'args'                => array(
				'external_id'  => array(
					'description' => __( 'One external id; answers the entry or 404.', 'secutix-sync' ),
					'type'        => 'string',
					'minLength'   => 1,
					'maxLength'   => 191,
				),
				'external_ids' => array(
					'description' => __( 'Comma-separated external ids; answers the list of those found.', 'secutix-sync' ),
					'type'        => 'array',
					'items'       => array(
						'type'      => 'string',
						'minLength' => 1,
						'maxLength' => 191,
					),
					'minItems'    => 1,
					'maxItems'    => SECUTIX_SYNC_MAX_LOOKUP_IDS,
				),
			),
		)
	);
	register_rest_route(
		SECUTIX_SYNC_REST_NAMESPACE,
		'/health',
		array(
			'methods'             => WP_REST_Server::READABLE,
			'callback'            => 'secutix_sync_rest_health',
			'permission_callback' => 'secutix_sync_rest_permission',
		)
	);
}
add_action( 'rest_api_init', 'secutix_sync_register_routes' );

/**
 * GET /secutix-sync/v1/lookup: the post holding an external id, in any status (trash included).
 *
 * @param WP_REST_Request $request Request.
 * @return WP_REST_Response|WP_Error
 */
function secutix_sync_rest_lookup( WP_REST_Request $request ) {
	$one  = $request->get_param( 'external_id' );
	$many = $request->get_param( 'external_ids' );
	if ( ( null === $one ) === ( null === $many ) ) {
		return new WP_Error(
			'rest_invalid_param',
			__( 'Give exactly one of external_id or external_ids.', 'secutix-sync' ),
			array( 'status' => 400 )
		);
	}

	if ( null !== $many ) {
		return rest_ensure_response( array_values( secutix_sync_find( array_values( array_unique( $many ) ) ) ) );
	}
	$found = secutix_sync_find( array( $one ) );
	if ( ! $found ) {
		return new WP_Error(
			'not_found',
			/* translators: 1: post type, 2: external id */
			sprintf( __( 'No %1$s post has secutix_external_id %2$s.', 'secutix-sync' ), secutix_sync_post_type(), $one ),
			array( 'status' => 404 )
		);
	}
	return rest_ensure_response( reset( $found ) );
}

/**
 * Finds the posts of the secutix-sync post type holding these external ids, in any post status.
 *
 * Trashed posts count: the daemon must restore or update them rather than create a duplicate. If
 * several posts hold one id, the answer is the lowest id that is not in the trash, and the others
 * are listed in `duplicates`.
 *
 * Cost: one query. The postmeta index on meta_key narrows it to the rows of secutix_external_id,
 * then MySQL compares their values, so it is linear in the number of synced posts (milliseconds for
 * thousands). README.md shows an optional index for very large sites.
 *
 * @param string[] $external_ids External ids.
 * @return array<string, array> External id (as stored) => { id, external_id, status, content_hash, modified_gmt, duplicates }.
 */
function secutix_sync_find( array $external_ids ) {
	global $wpdb;

	$placeholders = implode( ', ', array_fill( 0, count( $external_ids ), '%s' ) );
	// phpcs:disable WordPress.DB.PreparedSQL.InterpolatedNotPrepared, WordPress.DB.DirectDatabaseQuery -- placeholders are built above; a fresh read is wanted.
	$rows = $wpdb->get_results(
		$wpdb->prepare(
			"SELECT p.ID, p.post_status, p.post_modified, p.post_modified_gmt, e.meta_value AS external_id, h.meta_value AS content_hash
			FROM {$wpdb->postmeta} e
			INNER JOIN {$wpdb->posts} p ON p.ID = e.post_id
			LEFT JOIN {$wpdb->postmeta} h ON h.post_id = p.ID AND h.meta_key = 'secutix_content_hash'
			WHERE e.meta_key = 'secutix_external_id' AND e.meta_value IN ( $placeholders ) AND p.post_type = %s
			ORDER BY p.post_status = 'trash', p.ID",
			array_merge( $external_ids, array( secutix_sync_post_type() ) )
		)
	);
	// phpcs:enable

	$found = array();
	foreach ( $rows as $row ) {
		$id = (int) $row->ID;
		if ( isset( $found[ $row->external_id ] ) ) {
			if ( $found[ $row->external_id ]['id'] !== $id ) {
				$found[ $row->external_id ]['duplicates'][] = $id;
			}
			continue;
		}
		// Drafts never published keep a zero GMT date; core REST answers the local date converted, so do we.
		$modified_gmt = '0000-00-00 00:00:00' === $row->post_modified_gmt ? get_gmt_from_date( $row->post_modified ) : $row->post_modified_gmt;

		$found[ $row->external_id ] = array(
			'id'           => $id,
			'external_id'  => $row->external_id,
			'status'       => $row->post_status,
			'content_hash' => $row->content_hash,
			'modified_gmt' => mysql_to_rfc3339( $modified_gmt ),
			'duplicates'   => array(),
		);
	}
	return $found;
}

/**
 * GET /secutix-sync/v1/health: what the daemon's `check` command verifies before pushing.
 *
 * @return WP_REST_Response
 */
function secutix_sync_rest_health() {
	$post_type = secutix_sync_post_type();
	$object    = get_post_type_object( $post_type );
	$meta      = array();
	foreach ( secutix_sync_meta_keys() as $key => $schema ) {
		$meta[ $key ] = $schema['type'];
	}
	return rest_ensure_response(
		array(
			'plugin'                 => 'secutix-sync',
			'version'                => SECUTIX_SYNC_VERSION,
			'wordpress'              => get_bloginfo( 'version' ),
			'post_type'              => $post_type,
			'post_type_registered'   => null !== $object,
			'rest_namespace'         => $object && $object->rest_namespace ? $object->rest_namespace : 'wp/v2',
			'rest_base'              => $object && $object->rest_base ? $object->rest_base : $post_type,
			'supports_custom_fields' => post_type_supports( $post_type, 'custom-fields' ),
			'meta_keys'              => $meta,
			/** This filter is documented in wp-includes/rest-api/class-wp-rest-server.php */
			'max_batch_size'         => (int) apply_filters( 'rest_get_max_batch_size', 25 ),
		)
	);
}
