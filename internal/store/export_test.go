package store

// ExclusiveKey is the SQL of an Exclusive lock's key, for tests.
const ExclusiveKey = exclusiveKey
