module github.com/briefapp/brief

go 1.26.0

require golang.org/x/sys v0.50.0

require github.com/NVIDIA/go-nvml v0.13.4-1
