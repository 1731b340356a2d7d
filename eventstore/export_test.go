package eventstore

// IndexPull is indexPull, for the benchmarks' raw baseline.
const IndexPull = indexPull

// ReadPull is readPull, for the test of a reader that falls behind.
const ReadPull = readPull
