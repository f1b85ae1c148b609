module github.com/picoflow/picoflow

go 1.26.0

require github.com/scigolib/hdf5 v0.14.0
