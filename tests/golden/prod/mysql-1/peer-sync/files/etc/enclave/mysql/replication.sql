-- enclave: replication source of mysql-1 (stack prod), written by peer sync.
-- Run it once by hand when the pair is ready: mariadb < /etc/enclave/mysql/replication.sql
CHANGE MASTER TO MASTER_HOST = '10.30.0.8', MASTER_USER = 'replicator',
  MASTER_PASSWORD = 'PLACEHOLDER-replication-password', MASTER_USE_GTID = slave_pos;
START SLAVE;
