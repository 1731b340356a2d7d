package eventstore

// IndexPull is indexPull, for the benchmarks' raw baseline.
const IndexPull = indexPull
