using Llada.Evaluation;
using Llada.Tests.Training.Data;

namespace Llada.Tests.Evaluation;

public sealed class TaskFileTests : IDisposable
{
    private readonly string _dir = EvalFakes.Temp();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Header_line_sets_name_type_match_and_gen_length()
    {
        string path = EvalFakes.WriteLines(_dir, "t.jsonl",
            """{"eval_task":"sums","type":"generate","match":"contains","gen_length":12}""",
            """{"prompt":"1+1?","answer":"2","id":"a"}""",
            "",
            """{"prompt":"2+2?","accept":["4","four"],"match":"exact"}""");
        var task = TaskFile.Load(path);
        Assert.Equal("sums", task.Name);
        Assert.Equal(EvalTaskType.Generate, task.Type);
        Assert.Equal(12, task.GenLength);
        var items = task.Items.Cast<GenerateItem>().ToArray();
        Assert.Equal([2, 4], items.Select(i => i.Line));
        Assert.Equal("a", items[0].Id);
        Assert.Equal(MatchRule.Contains, items[0].Match); // the header's default
        Assert.Equal(MatchRule.Exact, items[1].Match);    // the item's own rule wins
        Assert.Equal(["4", "four"], items[1].Accept);
    }

    [Fact]
    public void Sidecar_and_per_line_type_and_inferred_type_all_work()
    {
        string sidecar = EvalFakes.WriteLines(_dir, "c.jsonl", """{"prompt":"p","choices":["x","y"],"answer":1}""");
        File.WriteAllText(TaskFile.SidecarPath(sidecar), """{"eval_task":"mc","type":"choice"}""");
        var a = TaskFile.Load(sidecar);
        Assert.Equal(("mc", EvalTaskType.Choice, 1), (a.Name, a.Type, ((ChoiceItem)a.Items[0]).Answer));

        var b = TaskFile.Load(EvalFakes.WriteLines(_dir, "typed.jsonl", """{"type":"perplexity","text":"Some words."}"""));
        Assert.Equal(("typed", EvalTaskType.Perplexity), (b.Name, b.Type));

        // The SFT task files carry no type: prompt + answer means generate.
        var c = TaskFile.Load(EvalFakes.WriteLines(_dir, "sft.jsonl", """{"prompt":"What is 1 + 1?","answer":"2","task":"arith"}"""));
        Assert.Equal(EvalTaskType.Generate, c.Type);
    }

    [Fact]
    public void Source_text_file_becomes_documents_or_paragraphs()
    {
        EvalFakes.WriteLines(_dir, "corpus.txt", "First para.", "Second para.", "", "", "Next doc.");
        string docs = EvalFakes.WriteLines(_dir, "docs.jsonl", """{"eval_task":"d","type":"perplexity","source":"corpus.txt"}""");
        var d = TaskFile.Load(docs);
        Assert.Equal(["First para.\nSecond para.", "Next doc."], d.Items.Cast<PerplexityItem>().Select(i => i.Text));
        Assert.Equal([1, 5], d.Items.Select(i => i.Line));
        string paras = EvalFakes.WriteLines(_dir, "paras.jsonl", """{"eval_task":"p","type":"perplexity","source":"corpus.txt","unit":"paragraph"}""");
        Assert.Equal(3, TaskFile.Load(paras).Items.Count);
    }

    [Theory]
    [InlineData("""{"prompt":"p","answer":"a"}|{"prompt":"q"|""", 2, "not valid JSON")]
    [InlineData("""{"prompt":"p","answer":"a"}|{"prompt":"q"}""", 2, "needs \"answer\", \"accept\": [...] or \"regex\"")]
    [InlineData("""{"prompt":"p","choices":["a","b"],"answer":2}""", 1, "\"answer\" 2 is outside the 2 choices")]
    [InlineData("""{"prompt":"p","choices":["a"],"answer":0}""", 1, "at least 2 choices")]
    [InlineData("""{"text":"t"}||{"prompt":"p","answer":"a"}""", 3, "this is a generate item but the task is perplexity (from line 1)")]
    [InlineData("""{"type":"quiz","prompt":"p"}""", 1, "unknown task type \"quiz\"")]
    [InlineData("""{"prompt":"p","regex":"(unclosed"}""", 1, "not a valid .NET regular expression")]
    [InlineData("""{"text":"t"}|{"eval_task":"late","type":"perplexity"}""", 2, "header line may only be the first line")]
    [InlineData("""{"eval_task":"h","type":"choice","gen_length":0}""", 1, "\"gen_length\" must be a positive integer")]
    [InlineData("""[1,2]""", 1, "expected a JSON object, found array")]
    [InlineData("""{"answer":"a"}""", 1, "cannot tell the task type")]
    public void Parse_errors_name_file_and_line(string content, int line, string expected)
    {
        string path = EvalFakes.WriteLines(_dir, "bad.jsonl", content.Split('|'));
        var e = Assert.Throws<TaskFormatException>(() => TaskFile.Load(path));
        Assert.Equal(line, e.Line);
        Assert.StartsWith($"{path}:{line}: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Missing_source_and_empty_task_are_reported()
    {
        string path = EvalFakes.WriteLines(_dir, "s.jsonl", """{"eval_task":"s","type":"generate","source":"nowhere.jsonl"}""");
        Assert.Contains("s.jsonl:1: source 'nowhere.jsonl' not found", Assert.Throws<TaskFormatException>(() => TaskFile.Load(path)).Message);
        string empty = EvalFakes.WriteLines(_dir, "e.jsonl", """{"eval_task":"e","type":"generate"}""");
        Assert.Contains("the task has no items", Assert.Throws<TaskFormatException>(() => TaskFile.Load(empty)).Message);
    }

    [Fact]
    public void Limit_keeps_the_first_items()
    {
        string path = EvalFakes.WriteLines(_dir, "l.jsonl", Enumerable.Range(0, 5).Select(i => $$"""{"prompt":"p{{i}}","answer":"{{i}}"}""").ToArray());
        var task = TaskFile.Load(path);
        Assert.Equal(["0", "1"], task.Take(2).Items.Cast<GenerateItem>().Select(i => i.Accept[0]));
        Assert.Equal(5, task.Take(10).Items.Count);
        Assert.Equal(5, task.Take(null).Items.Count);
    }

    [Fact]
    public void Shipped_tasks_load_and_point_at_the_sft_sets()
    {
        string eval = Path.Combine(TestTokenizers.RepoRoot(), "data", "eval");
        var arith = TaskFile.Load(Path.Combine(eval, "arith.jsonl"));
        Assert.Equal((EvalTaskType.Generate, 200, 8), (arith.Type, arith.Items.Count, arith.GenLength));
        Assert.Equal("67", ((GenerateItem)arith.Items[0]).Accept.Single()); // "What is 76 - 9?"
        var hyponym = TaskFile.Load(Path.Combine(eval, "hyponym.jsonl"));
        Assert.Equal(3, ((GenerateItem)hyponym.Items[0]).Accept.Count);
        var choice = TaskFile.Load(Path.Combine(eval, "arith-choice.jsonl"));
        Assert.Equal((EvalTaskType.Choice, 200), (choice.Type, choice.Items.Count));
        foreach (ChoiceItem item in choice.Items.Cast<ChoiceItem>())
        {
            Assert.Equal(4, item.Choices.Distinct().Count());
            // The correct choice is the evaluated expression.
            var m = System.Text.RegularExpressions.Regex.Match(item.Prompt, @"(\d+) ([+-]) (\d+)");
            if (m.Success)
            {
                int x = int.Parse(m.Groups[1].Value), y = int.Parse(m.Groups[3].Value);
                Assert.Equal((m.Groups[2].Value == "+" ? x + y : x - y).ToString(), item.Choices[item.Answer]);
            }
        }
        var valid = TaskFile.Load(Path.Combine(eval, "corpus-valid.jsonl"));
        Assert.Equal((EvalTaskType.Perplexity, 93), (valid.Type, valid.Items.Count)); // 93 held-out documents (data/README.md)
        foreach (string file in Directory.GetFiles(eval, "*.jsonl")) Assert.NotEmpty(TaskFile.Load(file).Items);
    }
}
