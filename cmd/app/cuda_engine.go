package main

import (
	"github.com/briefapp/brief/cuda"
	"github.com/briefapp/brief/inference"
)

func init() {
	openCUDA = func(m *inference.Model) (inference.Engine, inference.DeviceMonitor, error) {
		e, err := cuda.New(m, cuda.Options{})
		if err != nil {
			return nil, nil, err
		}
		mon, err := cuda.OpenMonitor(0)
		if err != nil {
			return e, nil, nil // device-wide memory is optional
		}
		return e, mon, nil
	}
}
