"""The JVM servers of the real test tier: Apache Kafka, Kafka Connect and OpenSearch.

Their artifacts come from Maven Central through ``devstack/maven/pom.xml`` into
``.cache/jvm/`` (:mod:`.artifacts`); each runs as a child process through
:class:`~clickstream_devstack.servers.child_server.ChildServer`, as the embedded servers do.
"""
