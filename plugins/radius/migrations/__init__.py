"""The RADIUS plugin's tables: FreeRADIUS's rlm_sql schema, and the plugin's own queues and cursors."""
