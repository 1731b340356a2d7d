package eventstore

// IndexPull is indexPull, for the benchmarks' raw baseline.
const IndexPull = indexPull

// ReadPull and ReadAhead are readPull and readAhead, for the test of a
// reader that falls behind.
const (
	ReadPull  = readPull
	ReadAhead = readAhead
)
