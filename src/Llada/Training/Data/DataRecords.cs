namespace Llada.Training.Data;

/// <summary>How a plain-text (.txt) source is cut into documents.</summary>
public enum TextLayout
{
    /// <summary>A directory means one document per .txt file; a single file means <see cref="BlankLineSeparated"/>.</summary>
    Auto,

    /// <summary>Documents are separated by one or more blank lines; lines inside a document are joined with '\n'.</summary>
    BlankLineSeparated,

    /// <summary>Each file is a single document.</summary>
    OnePerFile,
}

/// <summary>One pre-training document and where it starts.</summary>
/// <param name="Text">Document text (lines joined with '\n', no trailing newline).</param>
/// <param name="Path">Source file.</param>
/// <param name="Line">1-based line where the document starts.</param>
public sealed record TextDocument(string Text, string Path, long Line);

/// <summary>One message of a chat dialogue.</summary>
/// <param name="Role">"user", "assistant", "system", ...</param>
/// <param name="Content">Message text.</param>
public sealed record ChatTurn(string Role, string Content);

/// <summary>A validated dialogue: non-empty, every message has a role and content, the last is the assistant's.</summary>
/// <param name="Messages">The messages in order.</param>
/// <param name="Path">Source file.</param>
/// <param name="Line">1-based line of the JSONL record.</param>
public sealed record Dialogue(IReadOnlyList<ChatTurn> Messages, string Path, long Line);

/// <summary>A validated preference record: a prompt (as chat history ending with the user's turn) and two answers.</summary>
/// <param name="History">Messages before the answer.</param>
/// <param name="Chosen">The preferred answer y_w.</param>
/// <param name="Rejected">The dispreferred answer y_l.</param>
/// <param name="Path">Source file.</param>
/// <param name="Line">1-based line of the JSONL record.</param>
public sealed record PreferenceRecord(IReadOnlyList<ChatTurn> History, string Chosen, string Rejected, string Path, long Line);
