package sim

var testSeed uint64 = 7
