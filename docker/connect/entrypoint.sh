#!/bin/sh
# Writes the distributed worker's properties from the environment, then starts it.
# Converters here are only defaults: the connector JSON sets its own.
set -eu

# The image's /opt/kafka/logs may not be writable by appuser; /tmp always is.
export LOG_DIR="${LOG_DIR:-/tmp/connect-logs}"

config=/tmp/connect-distributed.properties
cat > "$config" <<PROPERTIES
bootstrap.servers=${CONNECT_BOOTSTRAP_SERVERS:-kafka:19092}
group.id=${CONNECT_GROUP_ID:-clickstream-connect}
config.storage.topic=${CONNECT_CONFIG_TOPIC:-_connect-configs}
offset.storage.topic=${CONNECT_OFFSET_TOPIC:-_connect-offsets}
status.storage.topic=${CONNECT_STATUS_TOPIC:-_connect-status}
config.storage.replication.factor=${CONNECT_REPLICATION_FACTOR:-1}
offset.storage.replication.factor=${CONNECT_REPLICATION_FACTOR:-1}
status.storage.replication.factor=${CONNECT_REPLICATION_FACTOR:-1}
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
value.converter.schemas.enable=false
listeners=http://0.0.0.0:8083
rest.advertised.host.name=${CONNECT_ADVERTISED_HOST:-connect}
plugin.path=/opt/kafka/plugins
offset.flush.interval.ms=10000
PROPERTIES

exec /opt/kafka/bin/connect-distributed.sh "$config"
