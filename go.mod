module github.com/briefapp/brief

go 1.26.0

require (
	github.com/NVIDIA/go-nvml v0.13.4-1
	github.com/ardanlabs/jinja v1.8.0
	golang.org/x/sys v0.50.0
	google.golang.org/protobuf v1.36.12
)
