<?php
/**
 * Plugin Name: secutix-sync test: editor fields
 * Description: TEST SITES ONLY (installed by .ci/wordpress.sh start). Stands for what a web agency adds to the
 *              entries' post type beside the daemon's fields: its own meta (as ACF or a theme would) and a
 *              taxonomy, both writable through the REST API, so the integration tests can edit them "as an
 *              editor" and check that a sync never touches them.
 *
 * @package secutix-sync
 */

defined( 'ABSPATH' ) || exit;

add_action(
	'init',
	function () {
		$post_type = function_exists( 'secutix_sync_post_type' ) ? secutix_sync_post_type() : 'event';
		register_post_meta(
			$post_type,
			'venue_editor_note',
			array(
				'type'          => 'string',
				'single'        => true,
				'show_in_rest'  => true,
				'auth_callback' => function ( $allowed, $meta_key, $post_id, $user_id ) {
					return user_can( $user_id, 'edit_post', $post_id );
				},
			)
		);
		register_taxonomy(
			'venue_tag',
			$post_type,
			array(
				'label'        => 'Venue tags',
				'public'       => true,
				'show_in_rest' => true,
			)
		);
	},
	30
);
