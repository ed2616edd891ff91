<?php
// enclave: WordPress database settings for wordpress-4 (stack prod), written by peer sync.
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', 'PLACEHOLDER-db-password');
define('DB_HOST', '10.30.0.7');
define('WP_CONTENT_DIR', '/var/lib/wordpress/wp-content');
