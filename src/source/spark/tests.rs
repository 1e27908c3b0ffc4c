//! Unit tests of the Spark Connect client that need no server: URL parsing, error
//! classification, and that no token ever shows.
