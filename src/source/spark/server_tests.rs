//! Tests against the real Spark Connect server tests/run.sh starts.
