"""The JVM servers of the real test tier: Apache Kafka, Kafka Connect and OpenSearch.

Their artifacts come from Maven Central through ``devstack/maven/pom.xml`` into
``.cache/jvm/`` (:mod:`.artifacts`); each runs as a child process through
:mod:`.server`, the same way the embedded servers do.
"""
