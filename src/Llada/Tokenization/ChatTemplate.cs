using System.Globalization;
using System.Text;

namespace Llada.Tokenization;

/// <summary>Raised by a chat template's <c>raise_exception(...)</c> or by a template the interpreter cannot run.</summary>
public sealed class ChatTemplateException(string message) : Exception(message);

/// <summary>
/// A Hugging Face chat template: a Jinja subset interpreter with transformers' settings (trim_blocks, lstrip_blocks).
/// Supports {% for %} (with loop.index0/index/first/last/length/revindex, an inline <c>if</c> filter and {% else %}),
/// {% if/elif/else %}, {% set %} (including namespace attributes), {{ expressions }}, {# comments #}, whitespace
/// control (<c>{%-</c>, <c>-%}</c>), literals (strings with escapes, numbers, lists, dicts, true/false/none),
/// + - * / // % ~, comparisons, and/or/not, in / not in, is [not] tests, ternary if/else, attribute and item access,
/// slices, filters (trim, length, count, default, upper, lower, capitalize, title, string, int, float, join, first,
/// last, list, reverse, replace, tojson, items) and functions raise_exception, range, namespace.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Jinja.Node> _body;

    private ChatTemplate(string source, List<Jinja.Node> body)
    {
        Source = source;
        _body = body;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>
    /// The built-in LLaDA chat format, used when tokenizer_config.json has no chat_template: BOS, then per message
    /// "&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content, trimmed}&lt;|eot_id|&gt;", then with a
    /// generation prompt "&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n".
    /// </summary>
    public static ChatTemplate LladaDefault { get; } = Parse(
        "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
        + "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
        + "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}");

    /// <summary>Parses a template; throws <see cref="ChatTemplateException"/> naming the offending construct.</summary>
    public static ChatTemplate Parse(string source) => new(source, Jinja.Parser.Parse(source));

    /// <summary>Renders <paramref name="messages"/> (exposed to the template as dicts with "role" and "content").</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? bosToken, string? eosToken,
        IReadOnlyDictionary<string, object?>? extraVariables = null)
    {
        var list = new List<object?>(messages.Count);
        foreach (var m in messages)
            list.Add(new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content });
        var globals = new Dictionary<string, object?>
        {
            ["messages"] = list,
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken ?? "",
            ["eos_token"] = eosToken ?? "",
        };
        if (extraVariables is not null)
            foreach (var (k, v) in extraVariables) globals[k] = v;
        return Render(globals);
    }

    /// <summary>Renders with arbitrary variables (strings, bools, numbers, lists, string-keyed dictionaries).</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var interpreter = new Jinja.Interpreter(variables);
        var output = new StringBuilder();
        interpreter.Execute(_body, output);
        return output.ToString();
    }
}
