using System.Text;
using Llada.Training.Data;

namespace Llada.Tests.Training.Data;

public class CorpusReaderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void Text_file_is_cut_into_documents_at_blank_lines()
    {
        using var dir = new TempDir();
        // BOM, CRLF, runs of blank lines, whitespace-only separator lines, no final newline.
        string f = dir.File("c.txt", "\uFEFFFirst doc line one.\r\nline two\r\n\r\n\r\nSecond.\n   \nThird doc");
        var docs = CorpusReader.ReadDocuments([f], cancellationToken: Ct).ToList();
        Assert.Equal(["First doc line one.\nline two", "Second.", "Third doc"], docs.Select(d => d.Text));
        Assert.Equal([1L, 5, 7], docs.Select(d => d.Line));
    }

    [Fact]
    public void Directory_source_gives_one_document_per_file_in_ordinal_order()
    {
        using var dir = new TempDir();
        dir.File("corpus/b.txt", "Bee one.\n\nBee two.\n");
        dir.File("corpus/a.txt", "Aye.\n");
        dir.File("corpus/notes.md", "ignored");
        var docs = CorpusReader.ReadDocuments([Path.Combine(dir.Root, "corpus")], cancellationToken: Ct).ToList();
        Assert.Equal(["Aye.", "Bee one.\n\nBee two."], docs.Select(d => d.Text));
        var split = CorpusReader.ReadDocuments([Path.Combine(dir.Root, "corpus")], TextLayout.BlankLineSeparated, cancellationToken: Ct).ToList();
        Assert.Equal(["Aye.", "Bee one.", "Bee two."], split.Select(d => d.Text));
    }

    [Fact]
    public void Jsonl_text_records_are_documents()
    {
        using var dir = new TempDir();
        string f = dir.File("c.jsonl", "{\"text\":\"caf\\u00e9 au lait\"}\n\n{\"text\": \"two\\nlines\", \"id\": 7}\n");
        var docs = CorpusReader.ReadDocuments([f], cancellationToken: Ct).ToList();
        Assert.Equal(["café au lait", "two\nlines"], docs.Select(d => d.Text));
        Assert.Equal([1L, 3], docs.Select(d => d.Line));
    }

    [Fact]
    public void Messages_and_prompt_response_records_are_dialogues()
    {
        using var dir = new TempDir();
        string f = dir.File("s.jsonl",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":\"Hello!\"}]}\n" +
            "{\"prompt\":\"2+2?\",\"response\":\"4\"}\n");
        var d = CorpusReader.ReadDialogues([f], cancellationToken: Ct).ToList();
        Assert.Equal(2, d.Count);
        Assert.Equal([new ChatTurn("user", "Hi"), new ChatTurn("assistant", "Hello!")], d[0].Messages);
        Assert.Equal([new ChatTurn("user", "2+2?"), new ChatTurn("assistant", "4")], d[1].Messages);
        Assert.Equal(2, d[1].Line);
    }

    public static TheoryData<string, string> BadSftLines => new()
    {
        { "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}", "s.jsonl:2: malformed JSON" },
        { "{\"messages\":[]}", "s.jsonl:2: field \"messages\" is empty" },
        { "{\"messages\":{}}", "s.jsonl:2: field \"messages\" must be an array, found an object" },
        { "{\"messages\":[{\"content\":\"Hi\"}]}", "s.jsonl:2: missing field \"role\" in message 1 of 1" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":3}]}", "s.jsonl:2: field \"content\" in message 1 of 1 must be a string, found a number" },
        { "{\"messages\":[{\"role\":\"user\",\"content\":\"  \"},{\"role\":\"assistant\",\"content\":\"x\"}]}", "s.jsonl:2: message 1 of 2 (user) has empty \"content\"" },
        { "{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"q\"}]}", "s.jsonl:2: the last message is from \"user\", not \"assistant\"" },
        { "{\"prompt\":\"q\"}", "s.jsonl:2: missing field \"response\" in a prompt/response record" },
        { "{\"text\":\"plain\"}", "s.jsonl:2: missing field \"messages\" (or \"prompt\" and \"response\")" },
        { "[1,2]", "s.jsonl:2: expected a JSON object, found an array" },
        { "{\"prompt\":\"q\",\"response\":\"a\"} trailing", "s.jsonl:2: malformed JSON" },
    };

    [Theory]
    [MemberData(nameof(BadSftLines))]
    public void Bad_sft_record_is_reported_with_file_and_line(string badLine, string expected)
    {
        using var dir = new TempDir();
        string f = dir.File("s.jsonl", "{\"prompt\":\"ok\",\"response\":\"fine\"}\n" + badLine + "\n");
        var e = Assert.Throws<DataFormatException>(() => CorpusReader.ReadDialogues([f], cancellationToken: Ct).ToList());
        Assert.StartsWith(f + ":2: ", e.Message);
        Assert.Contains(expected[(expected.IndexOf(':') + 4)..], e.Message);
        Assert.Equal(2, e.Line);
        Assert.Equal(f, e.Path);
    }

    [Fact]
    public void Jsonl_document_without_text_field_is_an_error()
    {
        using var dir = new TempDir();
        string f = dir.File("c.jsonl", "{\"text\":\"ok\"}\n{\"body\":\"x\"}\n");
        var e = Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([f], cancellationToken: Ct).ToList());
        Assert.Equal($"{f}:2: missing field \"text\" in a pre-training record", e.Message);
    }

    [Fact]
    public void Invalid_utf8_is_detected_with_line_and_column()
    {
        using var dir = new TempDir();
        byte[] bytes = [.. "good line\n\nab"u8, 0xC3, 0x28, .. "cd\n"u8]; // C3 28: a lead byte without continuation
        string txt = dir.Bytes("bad.txt", bytes);
        var e = Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([txt], cancellationToken: Ct).ToList());
        Assert.Equal($"{txt}:3: invalid UTF-8 at byte column 3 (bytes C3286364); the file must be UTF-8 encoded", e.Message);

        string jsonl = dir.Bytes("bad.jsonl", [.. "{\"text\":\"ok\"}\n{\"text\":\"x"u8, 0xFF, .. "\"}\n"u8]);
        var e2 = Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([jsonl], cancellationToken: Ct).ToList());
        Assert.StartsWith($"{jsonl}:2: invalid UTF-8 at byte column 11", e2.Message);
    }

    [Fact]
    public void Truncated_multibyte_character_at_end_of_file_is_invalid()
    {
        using var dir = new TempDir();
        string f = dir.Bytes("t.txt", [.. "caf"u8, 0xC3]);
        var e = Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([f], cancellationToken: Ct).ToList());
        Assert.StartsWith($"{f}:1: invalid UTF-8 at byte column 4", e.Message);
    }

    [Fact]
    public void Empty_and_blank_inputs_are_errors()
    {
        using var dir = new TempDir();
        string empty = dir.File("e.txt", "");
        Assert.Equal($"{empty}: file is empty",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([empty], cancellationToken: Ct).ToList()).Message);
        string blank = dir.File("b.txt", "\n  \n\n");
        Assert.Equal($"{blank}: file contains no documents (only blank lines)",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([blank], cancellationToken: Ct).ToList()).Message);
        string blankJsonl = dir.File("b.jsonl", "\n\n");
        Assert.Equal($"{blankJsonl}: file contains no records (only blank lines)",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDialogues([blankJsonl], cancellationToken: Ct).ToList()).Message);
        string missing = Path.Combine(dir.Root, "nope.txt");
        Assert.Equal($"{missing}: file not found",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([missing], cancellationToken: Ct).ToList()).Message);
        Directory.CreateDirectory(Path.Combine(dir.Root, "void"));
        Assert.Contains("directory contains no .txt or .jsonl files",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDocuments([Path.Combine(dir.Root, "void")], cancellationToken: Ct).ToList()).Message);
    }

    [Fact]
    public void Text_file_given_as_sft_data_is_rejected()
    {
        using var dir = new TempDir();
        string f = dir.File("s.txt", "hello\n");
        Assert.Contains("SFT data must be a .jsonl file",
            Assert.Throws<DataFormatException>(() => CorpusReader.ReadDialogues([f], cancellationToken: Ct).ToList()).Message);
    }

    [Fact]
    public void Lines_longer_than_the_read_buffer_are_read_whole()
    {
        using var dir = new TempDir();
        string longLine = new('x', 200_000);
        string f = dir.File("l.txt", "a\n\n" + longLine + "\n\nb\n");
        Assert.Equal(["a", longLine, "b"], CorpusReader.ReadDocuments([f], cancellationToken: Ct).Select(d => d.Text));
    }

    [Fact]
    public void Progress_reports_bytes_up_to_the_total()
    {
        using var dir = new TempDir();
        var sb = new StringBuilder();
        for (int i = 0; i < 100_000; i++) sb.Append($"Document number {i}.\n\n");
        string a = dir.File("a.txt", sb.ToString());
        string b = dir.File("b.txt", "tail\n");
        long total = new FileInfo(a).Length + new FileInfo(b).Length;
        var reports = new List<DataProgress>();
        var progress = new SyncProgress<DataProgress>(reports.Add);
        int count = CorpusReader.ReadDocuments([a, b], progress: progress, cancellationToken: Ct).Count();
        Assert.Equal(100_001, count);
        Assert.True(reports.Count >= 3, $"{reports.Count} reports");
        Assert.All(reports, r => Assert.Equal(total, r.TotalBytes));
        Assert.Equal(reports.Select(r => r.BytesProcessed).Order(), reports.Select(r => r.BytesProcessed));
        Assert.Equal(total, reports[^1].BytesProcessed);
        Assert.Equal(1.0, reports[^1].Fraction);
    }

    [Fact]
    public void Cancellation_stops_reading()
    {
        using var dir = new TempDir();
        string f = dir.File("c.txt", "a\n\nb\n\nc\n");
        using var cts = new CancellationTokenSource();
        var e = CorpusReader.ReadDocuments([f], cancellationToken: cts.Token).GetEnumerator();
        Assert.True(e.MoveNext());
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => e.MoveNext());
    }

    [Fact]
    public void Committed_validation_data_reads_cleanly()
    {
        string root = TestTokenizers.RepoRoot();
        var docs = CorpusReader.ReadDocuments([Path.Combine(root, "data/corpus/valid.txt")], cancellationToken: Ct).ToList();
        Assert.Equal(93, docs.Count); // data/README.md: 93 validation documents
        var dialogues = CorpusReader.ReadDialogues([Path.Combine(root, "data/sft/valid.jsonl")], cancellationToken: Ct).ToList();
        Assert.Equal(1478, dialogues.Count); // data/README.md: 1,478 validation items
    }
}

/// <summary>IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
