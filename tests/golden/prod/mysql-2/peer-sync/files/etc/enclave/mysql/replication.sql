-- enclave: replication source of mysql-2 (stack prod), written by peer sync.
-- Run it once by hand when the pair is ready: mariadb < /etc/enclave/mysql/replication.sql
CHANGE MASTER TO MASTER_HOST = '10.30.0.7', MASTER_USER = 'replicator',
  MASTER_PASSWORD = 'PLACEHOLDER-replication-password', MASTER_USE_GTID = slave_pos;
START SLAVE;
