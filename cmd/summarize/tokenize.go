package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/briefapp/brief/inference/tokenizer"
)

func init() {
	register("tokenize", `print the token ids of the text on stdin as {"ids":[...]}`, runTokenize)
}

func runTokenize(args []string) error { return tokenize(args, os.Stdin, os.Stdout, os.Stderr) }

// tokenize reads text from in and writes {"ids":[...]} to out, with BOS
// first where the model's tokenizer config asks for it.
func tokenize(args []string, in io.Reader, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: summarize tokenize --model DIR [--no-bos] < text")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "model `folder` holding tokenizer.json or tokenizer.model")
	noBOS := fs.Bool("no-bos", false, "never add BOS, whatever the tokenizer config says")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("want --model DIR and no arguments")
	}
	tok, err := tokenizer.Load(*model)
	if err != nil {
		return err
	}
	text, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	ids := tok.Encode(string(text), tok.AddBOS() && !*noBOS)
	if ids == nil {
		ids = []int{}
	}
	return json.NewEncoder(out).Encode(struct {
		IDs []int `json:"ids"`
	}{ids})
}
