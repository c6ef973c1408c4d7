package chat

// The reference workload's prompt parts (DESIGN.md), as the original
// script wrote them.
const (
	// DefaultSystem is the system prompt.
	DefaultSystem = "You are Hermes 2, an unbiased AI assistant, and you always answer to the best of your ability."
	// DefaultPreamble comes before the article in the user message.
	DefaultPreamble = "You are given a partial and unparsed scientific article, please read it carefully and complete the request below."
	// DefaultInstruction comes after the article in the user message.
	DefaultInstruction = "Please summarize the article in 5 sentences."
)

// SummaryMessages returns the conversation that asks for a summary of
// article: the system prompt (left out when empty), then one user message
// made of DefaultPreamble, the article and the instruction, concatenated
// as they are (the reference article brings its own spaces:
// " == BEGIN ARTICLE == ... == END ARTICLE == ").
func SummaryMessages(system, instruction, article string) []Message {
	var msgs []Message
	if system != "" {
		msgs = append(msgs, Message{Role: "system", Content: system})
	}
	return append(msgs, Message{Role: "user", Content: DefaultPreamble + article + instruction})
}
