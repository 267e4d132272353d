"""Resources of the local broker: the Maven pom that resolves Kafka's jars and the broker's log configuration."""
