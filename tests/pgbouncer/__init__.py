"""vutf through pgbouncer in transaction-pooling mode."""
