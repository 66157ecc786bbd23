using Llada.Tokenization;

namespace Llada.Tests.Tokenization;

public class ChatTemplateTests
{
    // The chat_template of GSAI-ML/LLaDA-8B-Instruct's tokenizer_config.json, verbatim.
    private const string LladaInstructTemplate =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";

    [Fact]
    public void Renders_the_real_llada_template_like_the_reference_jinja()
    {
        var tokenizer = TokenizerFixtures.Load("handmade");
        Assert.True(tokenizer.HasOwnChatTemplate);
        Assert.Equal(LladaInstructTemplate, tokenizer.ChatTemplate.Source);
        var golden = TokenizerFixtures.Golden("handmade", "chat_golden.json");
        int count = 0;
        foreach (var c in golden.GetProperty("cases").EnumerateArray())
        {
            var messages = c.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToList();
            string rendered = tokenizer.ApplyChatTemplate(messages, c.GetProperty("add_generation_prompt").GetBoolean());
            Assert.Equal(c.GetProperty("rendered").GetString(), rendered);
            count++;
        }
        Assert.Equal(6, count);
    }

    [Fact]
    public void Llada_template_gives_the_spec_layout()
    {
        var template = ChatTemplate.Parse(LladaInstructTemplate);
        string s = template.Render([new("user", "  Hi  "), new("assistant", "Hello\n")], addGenerationPrompt: true, "<|startoftext|>", "<|endoftext|>");
        Assert.Equal("<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n", s);
    }

    [Fact]
    public void Built_in_llada_template_matches_the_real_one_with_a_generation_prompt()
    {
        var real = ChatTemplate.Parse(LladaInstructTemplate);
        ChatMessage[] chat = [new("system", "Be brief."), new("user", " 2+2? ")];
        Assert.Equal(real.Render(chat, true, "<s>", "</s>"), ChatTemplate.LladaDefault.Render(chat, true, "<s>", "</s>"));
        Assert.EndsWith("<|eot_id|>", ChatTemplate.LladaDefault.Render(chat, false, "<s>", "</s>"));
    }

    [Fact]
    public void Tokenizer_without_template_falls_back_to_the_built_in_one()
    {
        var tokenizer = TokenizerFixtures.Load("gpt35turbo");
        Assert.False(tokenizer.HasOwnChatTemplate);
        Assert.Same(ChatTemplate.LladaDefault, tokenizer.ChatTemplate);
    }

    [Fact]
    public void Loop_variables_conditionals_and_filters_work()
    {
        var t = ChatTemplate.Parse(
            "{%- for m in messages -%}" +
            "{%- if loop.first %}[{% elif loop.last %}|{% else %},{% endif -%}" +
            "{{ loop.index }}:{{ m.role | upper }}={{ m['content'] | trim | length }}" +
            "{%- endfor %}{{ ']' if add_generation_prompt else '.' }}{{ missing | default('d') }}{{ 'a' ~ 1 ~ none }}");
        string s = t.Render([new("user", " ab "), new("x", "c"), new("y", "")], addGenerationPrompt: true, null, null);
        Assert.Equal("[1:USER=2,2:X=1|3:Y=0]da1None", s);
    }

    [Fact]
    public void Set_inside_a_loop_does_not_leak_but_namespace_does()
    {
        var t = ChatTemplate.Parse("{% set x = 'out' %}{% set ns = namespace(n=0) %}{% for m in messages %}{% set x = 'in' %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ x }} {{ ns.n }}");
        Assert.Equal("out 2", t.Render([new("a", ""), new("b", "")], false, null, null));
    }

    [Fact]
    public void Trim_blocks_and_lstrip_blocks_follow_transformers()
    {
        var t = ChatTemplate.Parse("{% for m in messages %}\n    {% if true %}\n{{ m.content }}\n    {% endif %}\n{% endfor %}\nend");
        Assert.Equal("a\nb\nend", t.Render([new("u", "a"), new("u", "b")], false, null, null));
    }

    [Fact]
    public void Raise_exception_surfaces_as_chat_template_exception()
    {
        var t = ChatTemplate.Parse("{% if messages[0]['role'] != 'system' %}{{ raise_exception('System first, please') }}{% endif %}");
        var e = Assert.Throws<ChatTemplateException>(() => t.Render([new("user", "x")], false, null, null));
        Assert.Equal("System first, please", e.Message);
    }

    [Fact]
    public void String_literals_handle_escapes_and_comparisons()
    {
        var t = ChatTemplate.Parse("{{ 'it\\'s\\n' + \"q\\\"\" }}{% if 1 < 2 and not false and 'b' in 'abc' and 3 // 2 == 1 %}ok{% endif %}{# note #}");
        Assert.Equal("it's\nq\"ok", t.Render([], false, null, null));
    }

    [Fact]
    public void Named_template_list_uses_the_default_entry()
    {
        string dir = Path.Combine(Path.GetTempPath(), "llada-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(TokenizerFixtures.Directory("handmade"), "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
                """{"bos_token": "<s>", "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ bos_token }}"}]}""");
            var tokenizer = Tokenizer.FromDirectory(dir);
            Assert.Equal("D<s>", tokenizer.ApplyChatTemplate([]));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
