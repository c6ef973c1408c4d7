package gui

// DefaultSystemPrompt is the reference workload's system prompt
// (OpenHermes' own).
const DefaultSystemPrompt = "You are Hermes 2, an unbiased AI assistant, and you always answer to the best of your ability."

// preset is a named instruction placed after the article.
type preset struct {
	name        string
	instruction string
}

// customPreset is the name of the preset whose instruction the user writes.
const customPreset = "Custom"

// presets lists the instruction presets; the first is the reference
// workload's.
var presets = []preset{
	{"Summary in 5 sentences", "Please summarize the article in 5 sentences."},
	{"Key findings", "Please list the key findings of the article, one per line, most important first."},
	{"Bullet points", "Please summarize the article as 5 to 8 short bullet points."},
	{"TL;DR", "Please give a TL;DR of the article: one or two plain sentences."},
	{customPreset, ""},
}

func presetNames() []string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	return names
}

func presetByName(name string) (preset, bool) {
	for _, p := range presets {
		if p.name == name {
			return p, true
		}
	}
	return preset{}, false
}
