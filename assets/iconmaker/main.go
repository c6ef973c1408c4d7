// Command iconmaker draws Brief's icon, assets/icon.png: a page of text
// whose lines shrink into one short bold line, on a rounded blue square.
// Run from the repository root: go run ./assets/iconmaker
package main

import (
	"image"
	"image/color"
	"image/png"
	"log"
	"math"
	"os"
)

const (
	size = 512
	ss   = 4 // supersampling per axis, for smooth edges
)

// shape reports whether the point (x, y), in icon pixels, is covered and
// with which colour; later shapes paint over earlier ones.
type shape struct {
	in  func(x, y float64) bool
	col color.NRGBA
}

func roundRect(x0, y0, x1, y1, r float64) func(x, y float64) bool {
	return func(x, y float64) bool {
		if x < x0 || x > x1 || y < y0 || y > y1 {
			return false
		}
		cx := math.Max(x0+r, math.Min(x, x1-r))
		cy := math.Max(y0+r, math.Min(y, y1-r))
		return (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r
	}
}

func main() {
	bgTop := color.NRGBA{0x2f, 0x6f, 0xeb, 0xff}
	bgBottom := color.NRGBA{0x1b, 0x3f, 0x9e, 0xff}
	page := color.NRGBA{0xfb, 0xfc, 0xff, 0xff}
	ink := color.NRGBA{0xa9, 0xb6, 0xd3, 0xff}
	accent := color.NRGBA{0xff, 0xb0, 0x20, 0xff}

	shapes := []shape{
		{roundRect(150, 92, 362, 420, 22), page},
	}
	// Text lines of the article, then the short summary line.
	for i, w := range []float64{150, 150, 128, 150, 96} {
		y := 140 + float64(i)*38
		shapes = append(shapes, shape{roundRect(181, y, 181+w, y+16, 8), ink})
	}
	shapes = append(shapes, shape{roundRect(181, 340, 301, 370, 15), accent})

	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	bg := roundRect(16, 16, size-16, size-16, 96)
	for py := 0; py < size; py++ {
		for px := 0; px < size; px++ {
			var r, g, b, a float64
			for sy := 0; sy < ss; sy++ {
				for sx := 0; sx < ss; sx++ {
					x := float64(px) + (float64(sx)+0.5)/ss
					y := float64(py) + (float64(sy)+0.5)/ss
					if !bg(x, y) {
						continue
					}
					t := y / size
					c := [3]float64{
						lerp(bgTop.R, bgBottom.R, t), lerp(bgTop.G, bgBottom.G, t), lerp(bgTop.B, bgBottom.B, t),
					}
					for _, s := range shapes {
						if s.in(x, y) {
							c = [3]float64{float64(s.col.R), float64(s.col.G), float64(s.col.B)}
						}
					}
					r, g, b, a = r+c[0], g+c[1], b+c[2], a+1
				}
			}
			if a == 0 {
				continue
			}
			// Colours are averaged over covered samples; coverage is alpha.
			img.SetNRGBA(px, py, color.NRGBA{
				R: uint8(r / a), G: uint8(g / a), B: uint8(b / a), A: uint8(255 * a / (ss * ss)),
			})
		}
	}
	f, err := os.Create("assets/icon.png")
	if err != nil {
		log.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

func lerp(a, b uint8, t float64) float64 { return float64(a) + (float64(b)-float64(a))*t }
