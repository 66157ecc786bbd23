using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Llada.Tokenization.Jinja;

/// <summary>Jinja's "undefined": prints as empty, is falsy, and is what missing names and keys evaluate to.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Value = new();
    public override string ToString() => "";
}

/// <summary>A namespace() object: attributes assignable from inner scopes.</summary>
internal sealed class Namespace : Dictionary<string, object?>
{
    public Namespace() : base(StringComparer.Ordinal) { }
}

internal abstract record Node;
internal sealed record TextNode(string Text) : Node;
internal sealed record OutputNode(Expr Value) : Node;
internal sealed record IfNode(List<(Expr Test, List<Node> Body)> Branches, List<Node>? Else) : Node;
internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else) : Node;
internal sealed record SetNode(string Name, string? Attribute, Expr Value) : Node;

internal abstract record Expr;
internal sealed record Literal(object? Value) : Expr;
internal sealed record Name(string Id) : Expr;
internal sealed record ListExpr(List<Expr> Items) : Expr;
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr;
internal sealed record GetAttr(Expr Target, string Attribute) : Expr;
internal sealed record GetItem(Expr Target, Expr Index) : Expr;
internal sealed record Slice(Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr;
internal sealed record Call(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record FilterExpr(Expr Target, string Filter, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
internal sealed record TestExpr(Expr Target, string Test, bool Negated, List<Expr> Args) : Expr;
internal sealed record Unary(string Op, Expr Operand) : Expr;
internal sealed record Binary(string Op, Expr Left, Expr Right) : Expr;
internal sealed record Conditional(Expr Test, Expr IfTrue, Expr? IfFalse) : Expr;

/// <summary>Splits a template into text and tag tokens, applying trim_blocks, lstrip_blocks and '-' whitespace control.</summary>
internal static class Lexer
{
    internal enum Kind { Text, Output, Statement }

    internal readonly record struct Chunk(Kind Kind, string Content, int Offset);

    public static List<Chunk> Split(string src)
    {
        var chunks = new List<Chunk>();
        int i = 0;
        bool trimNextLeading = false;   // a '-' closed the previous tag
        bool trimNextNewline = false;   // trim_blocks: first newline after a block tag
        while (i <= src.Length)
        {
            int open = FindTagOpen(src, i);
            int textEnd = open < 0 ? src.Length : open;
            string text = src[i..textEnd];
            if (trimNextLeading) text = text.TrimStart();
            else if (trimNextNewline)
            {
                if (text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
                else if (text.StartsWith('\n')) text = text[1..];
            }
            trimNextLeading = trimNextNewline = false;
            if (open < 0)
            {
                if (text.Length > 0) chunks.Add(new Chunk(Kind.Text, text, i));
                break;
            }
            char type = src[open + 1];
            bool minusLeft = open + 2 < src.Length && src[open + 2] == '-';
            bool plusLeft = open + 2 < src.Length && src[open + 2] == '+';
            if (minusLeft) text = text.TrimEnd();
            else if (type != '{' && !plusLeft)
            {
                // lstrip_blocks: spaces and tabs from the start of a line up to a block or comment tag are removed.
                int lineStart = text.LastIndexOf('\n') + 1;
                int sourcePos = textEnd - (text.Length - lineStart);
                bool blanks = text.AsSpan(lineStart).IndexOfAnyExcept(' ', '\t') < 0;
                if (blanks && (sourcePos == 0 || src[sourcePos - 1] == '\n')) text = text[..lineStart];
            }
            if (text.Length > 0) chunks.Add(new Chunk(Kind.Text, text, i));

            int bodyStart = open + 2 + (minusLeft || plusLeft ? 1 : 0);
            string close = type switch { '{' => "}}", '%' => "%}", _ => "#}" };
            int closeAt = FindClose(src, bodyStart, close);
            if (closeAt < 0) throw new ChatTemplateException($"Unclosed '{{{type}' tag at offset {open}.");
            bool minusRight = closeAt > bodyStart && src[closeAt - 1] == '-';
            string body = src[bodyStart..(minusRight ? closeAt - 1 : closeAt)].Trim();
            if (type == '{') chunks.Add(new Chunk(Kind.Output, body, open));
            else if (type == '%') chunks.Add(new Chunk(Kind.Statement, body, open));
            i = closeAt + 2;
            trimNextLeading = minusRight;
            trimNextNewline = type != '{' && !minusRight;
            if (i == src.Length) break;
        }
        return chunks;
    }

    private static int FindTagOpen(string s, int from)
    {
        for (int k = s.IndexOf('{', from); k >= 0 && k + 1 < s.Length; k = s.IndexOf('{', k + 1))
            if (s[k + 1] is '{' or '%' or '#') return k;
        return -1;
    }

    // Skips string literals so "}}" inside quotes does not close the tag.
    private static int FindClose(string s, int from, string close)
    {
        char quote = '\0';
        for (int k = from; k + 1 < s.Length; k++)
        {
            char c = s[k];
            if (quote != '\0')
            {
                if (c == '\\') k++;
                else if (c == quote) quote = '\0';
                continue;
            }
            if (close != "#}" && c is '\'' or '"') { quote = c; continue; }
            if (c == close[0] && s[k + 1] == close[1]) return k;
        }
        return -1;
    }
}

/// <summary>Tokens of one tag's expression.</summary>
internal sealed class ExprTokens
{
    internal enum T { Name, String, Number, Op, End }
    internal readonly record struct Tok(T Type, string Text, object? Value);

    private readonly List<Tok> _toks = new();
    private int _pos;
    public readonly string Source;

    public ExprTokens(string src)
    {
        Source = src;
        int i = 0;
        while (i < src.Length)
        {
            char c = src[i];
            if (char.IsWhiteSpace(c)) { i++; continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int s = i;
                while (i < src.Length && (char.IsLetterOrDigit(src[i]) || src[i] == '_')) i++;
                _toks.Add(new Tok(T.Name, src[s..i], null));
            }
            else if (char.IsDigit(c))
            {
                int s = i;
                while (i < src.Length && (char.IsDigit(src[i]) || src[i] == '_')) i++;
                bool isFloat = i + 1 < src.Length && src[i] == '.' && char.IsDigit(src[i + 1]);
                if (isFloat) { i++; while (i < src.Length && char.IsDigit(src[i])) i++; }
                string text = src[s..i].Replace("_", "");
                _toks.Add(new Tok(T.Number, text, isFloat ? (object)double.Parse(text, CultureInfo.InvariantCulture) : long.Parse(text, CultureInfo.InvariantCulture)));
            }
            else if (c is '\'' or '"')
            {
                var sb = new StringBuilder();
                i++;
                while (i < src.Length && src[i] != c)
                {
                    if (src[i] == '\\' && i + 1 < src.Length)
                    {
                        char e = src[i + 1];
                        i += 2;
                        switch (e)
                        {
                            case 'n': sb.Append('\n'); break;
                            case 't': sb.Append('\t'); break;
                            case 'r': sb.Append('\r'); break;
                            case 'b': sb.Append('\b'); break;
                            case 'f': sb.Append('\f'); break;
                            case '\\': sb.Append('\\'); break;
                            case '\'': sb.Append('\''); break;
                            case '"': sb.Append('"'); break;
                            case 'u' when i + 4 <= src.Length:
                                sb.Append((char)Convert.ToInt32(src.Substring(i, 4), 16)); i += 4; break;
                            default: sb.Append('\\').Append(e); break; // Python keeps unknown escapes
                        }
                    }
                    else sb.Append(src[i++]);
                }
                if (i >= src.Length) throw new ChatTemplateException($"Unterminated string literal in '{src}'.");
                i++;
                _toks.Add(new Tok(T.String, sb.ToString(), sb.ToString()));
            }
            else
            {
                string[] ops = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="];
                string? op = ops.FirstOrDefault(o => string.CompareOrdinal(src, i, o, 0, o.Length) == 0);
                if (op is null) throw new ChatTemplateException($"Unexpected character '{c}' in '{src}'.");
                _toks.Add(new Tok(T.Op, op, null));
                i += op.Length;
            }
        }
        _toks.Add(new Tok(T.End, "", null));
    }

    public Tok Peek(int ahead = 0) => _toks[Math.Min(_pos + ahead, _toks.Count - 1)];
    public Tok Next() => _toks[Math.Min(_pos++, _toks.Count - 1)];
    public bool AtEnd => Peek().Type == T.End;
    public bool IsOp(string op, int ahead = 0) => Peek(ahead) is { Type: T.Op } t && t.Text == op;
    public bool IsName(string name, int ahead = 0) => Peek(ahead) is { Type: T.Name } t && t.Text == name;

    public bool TakeOp(string op)
    {
        if (!IsOp(op)) return false;
        _pos++;
        return true;
    }

    public bool TakeName(string name)
    {
        if (!IsName(name)) return false;
        _pos++;
        return true;
    }

    public void ExpectOp(string op)
    {
        if (!TakeOp(op)) throw new ChatTemplateException($"Expected '{op}' but found '{Peek().Text}' in '{Source}'.");
    }

    public string ExpectName()
    {
        var t = Next();
        if (t.Type != T.Name) throw new ChatTemplateException($"Expected a name but found '{t.Text}' in '{Source}'.");
        return t.Text;
    }
}

/// <summary>Builds the node tree of a template.</summary>
internal static class Parser
{
    public static List<Node> Parse(string source)
    {
        var chunks = Lexer.Split(source);
        int pos = 0;
        var body = ParseBlock(chunks, ref pos, [], out string? end);
        if (end is not null) throw new ChatTemplateException($"Unexpected '{{% {end} %}}'.");
        return body;
    }

    // Parses nodes until a statement whose keyword is in stopAt; returns that statement's text in 'end'.
    private static List<Node> ParseBlock(List<Lexer.Chunk> chunks, ref int pos, string[] stopAt, out string? end)
    {
        var nodes = new List<Node>();
        end = null;
        while (pos < chunks.Count)
        {
            var chunk = chunks[pos++];
            switch (chunk.Kind)
            {
                case Lexer.Kind.Text:
                    nodes.Add(new TextNode(chunk.Content));
                    break;
                case Lexer.Kind.Output:
                {
                    var toks = new ExprTokens(chunk.Content);
                    nodes.Add(new OutputNode(ParseExpressionToEnd(toks)));
                    break;
                }
                case Lexer.Kind.Statement:
                {
                    string keyword = chunk.Content.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? "";
                    if (stopAt.Contains(keyword))
                    {
                        end = chunk.Content;
                        return nodes;
                    }
                    nodes.Add(ParseStatement(chunk, chunks, ref pos));
                    break;
                }
            }
        }
        if (stopAt.Length > 0) throw new ChatTemplateException($"Missing '{{% {stopAt[^1]} %}}' at the end of the template.");
        return nodes;
    }

    private static Node ParseStatement(Lexer.Chunk chunk, List<Lexer.Chunk> chunks, ref int pos)
    {
        var toks = new ExprTokens(chunk.Content);
        string keyword = toks.ExpectName();
        switch (keyword)
        {
            case "if":
            {
                var branches = new List<(Expr, List<Node>)>();
                Expr test = ParseExpressionToEnd(toks);
                List<Node>? elseBody = null;
                while (true)
                {
                    var body = ParseBlock(chunks, ref pos, ["elif", "else", "endif"], out string? end);
                    branches.Add((test, body));
                    var endToks = new ExprTokens(end!);
                    string k = endToks.ExpectName();
                    if (k == "elif") { test = ParseExpressionToEnd(endToks); continue; }
                    if (k == "else")
                    {
                        elseBody = ParseBlock(chunks, ref pos, ["endif"], out _);
                    }
                    break;
                }
                return new IfNode(branches, elseBody);
            }
            case "for":
            {
                var targets = new List<string> { toks.ExpectName() };
                while (toks.TakeOp(",")) targets.Add(toks.ExpectName());
                if (!toks.TakeName("in")) throw new ChatTemplateException($"Expected 'in' in '{{% {chunk.Content} %}}'.");
                Expr iterable = ParseConditionalFree(toks);
                Expr? filter = toks.TakeName("if") ? ParseOr(toks) : null;
                toks.TakeName("recursive");
                if (!toks.AtEnd) throw new ChatTemplateException($"Unexpected '{toks.Peek().Text}' in '{{% {chunk.Content} %}}'.");
                var body = ParseBlock(chunks, ref pos, ["else", "endfor"], out string? end);
                List<Node>? elseBody = end!.Trim() == "else" ? ParseBlock(chunks, ref pos, ["endfor"], out _) : null;
                return new ForNode(targets, iterable, filter, body, elseBody);
            }
            case "set":
            {
                string name = toks.ExpectName();
                string? attribute = toks.TakeOp(".") ? toks.ExpectName() : null;
                if (!toks.TakeOp("="))
                    throw new ChatTemplateException($"Block assignments ('{{% set {name} %}}...{{% endset %}}') are not supported.");
                return new SetNode(name, attribute, ParseExpressionToEnd(toks));
            }
            default:
                throw new ChatTemplateException($"Statement '{{% {keyword} %}}' is not supported by this Jinja subset.");
        }
    }

    private static Expr ParseExpressionToEnd(ExprTokens toks)
    {
        var e = ParseExpression(toks);
        if (!toks.AtEnd) throw new ChatTemplateException($"Unexpected '{toks.Peek().Text}' in '{toks.Source}'.");
        return e;
    }

    internal static Expr ParseExpression(ExprTokens toks)
    {
        var value = ParseOr(toks);
        if (toks.TakeName("if"))
        {
            var test = ParseOr(toks);
            Expr? otherwise = toks.TakeName("else") ? ParseExpression(toks) : null;
            return new Conditional(test, value, otherwise);
        }
        return value;
    }

    // For a loop's iterable, where a trailing 'if' is the loop filter, not a conditional expression.
    private static Expr ParseConditionalFree(ExprTokens toks) => ParseOr(toks);

    private static Expr ParseOr(ExprTokens toks)
    {
        var left = ParseAnd(toks);
        while (toks.TakeName("or")) left = new Binary("or", left, ParseAnd(toks));
        return left;
    }

    private static Expr ParseAnd(ExprTokens toks)
    {
        var left = ParseNot(toks);
        while (toks.TakeName("and")) left = new Binary("and", left, ParseNot(toks));
        return left;
    }

    private static Expr ParseNot(ExprTokens toks) =>
        toks.TakeName("not") ? new Unary("not", ParseNot(toks)) : ParseCompare(toks);

    private static Expr ParseCompare(ExprTokens toks)
    {
        var left = ParseConcat(toks);
        while (true)
        {
            string? op = null;
            foreach (var o in new[] { "==", "!=", "<=", ">=", "<", ">" })
                if (toks.TakeOp(o)) { op = o; break; }
            if (op is null && toks.TakeName("in")) op = "in";
            if (op is null && toks.IsName("not") && toks.IsName("in", 1)) { toks.Next(); toks.Next(); op = "not in"; }
            if (op is null) return left;
            left = new Binary(op, left, ParseConcat(toks));
        }
    }

    private static Expr ParseConcat(ExprTokens toks)
    {
        var left = ParseAdditive(toks);
        while (toks.TakeOp("~")) left = new Binary("~", left, ParseAdditive(toks));
        return left;
    }

    private static Expr ParseAdditive(ExprTokens toks)
    {
        var left = ParseMultiplicative(toks);
        while (true)
        {
            if (toks.TakeOp("+")) left = new Binary("+", left, ParseMultiplicative(toks));
            else if (toks.TakeOp("-")) left = new Binary("-", left, ParseMultiplicative(toks));
            else return left;
        }
    }

    private static Expr ParseMultiplicative(ExprTokens toks)
    {
        var left = ParseUnary(toks);
        while (true)
        {
            string? op = null;
            foreach (var o in new[] { "//", "*", "/", "%" })
                if (toks.TakeOp(o)) { op = o; break; }
            if (op is null) return left;
            left = new Binary(op, left, ParseUnary(toks));
        }
    }

    private static Expr ParseUnary(ExprTokens toks)
    {
        if (toks.TakeOp("-")) return new Unary("-", ParseUnary(toks));
        if (toks.TakeOp("+")) return ParseUnary(toks);
        return ParseFilterAndTest(toks);
    }

    private static Expr ParseFilterAndTest(ExprTokens toks)
    {
        var e = ParsePostfix(toks);
        while (true)
        {
            if (toks.TakeOp("|"))
            {
                string name = toks.ExpectName();
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                if (toks.TakeOp("(")) ParseArgs(toks, args, kwargs);
                e = new FilterExpr(e, name, args, kwargs);
            }
            else if (toks.TakeName("is"))
            {
                bool negated = toks.TakeName("not");
                string test = toks.ExpectName();
                var args = new List<Expr>();
                if (toks.TakeOp("(")) ParseArgs(toks, args, []);
                else if (toks.Peek().Type is ExprTokens.T.String or ExprTokens.T.Number) args.Add(ParsePostfix(toks));
                e = new TestExpr(e, test, negated, args);
            }
            else return e;
        }
    }

    private static void ParseArgs(ExprTokens toks, List<Expr> args, List<(string, Expr)> kwargs)
    {
        while (!toks.TakeOp(")"))
        {
            if (toks.Peek().Type == ExprTokens.T.Name && toks.IsOp("=", 1))
            {
                string name = toks.ExpectName();
                toks.ExpectOp("=");
                kwargs.Add((name, ParseExpression(toks)));
            }
            else args.Add(ParseExpression(toks));
            if (!toks.TakeOp(","))
            {
                toks.ExpectOp(")");
                return;
            }
        }
    }

    private static Expr ParsePostfix(ExprTokens toks)
    {
        var e = ParsePrimary(toks);
        while (true)
        {
            if (toks.TakeOp("."))
                e = new GetAttr(e, toks.ExpectName());
            else if (toks.TakeOp("["))
            {
                Expr? start = null, stop = null, step = null;
                bool isSlice = false;
                if (!toks.IsOp(":")) start = ParseExpression(toks);
                if (toks.TakeOp(":"))
                {
                    isSlice = true;
                    if (!toks.IsOp(":") && !toks.IsOp("]")) stop = ParseExpression(toks);
                    if (toks.TakeOp(":") && !toks.IsOp("]")) step = ParseExpression(toks);
                }
                toks.ExpectOp("]");
                e = isSlice ? new Slice(e, start, stop, step) : new GetItem(e, start!);
            }
            else if (toks.TakeOp("("))
            {
                var args = new List<Expr>();
                var kwargs = new List<(string, Expr)>();
                ParseArgs(toks, args, kwargs);
                e = new Call(e, args, kwargs);
            }
            else return e;
        }
    }

    private static Expr ParsePrimary(ExprTokens toks)
    {
        var t = toks.Next();
        switch (t.Type)
        {
            case ExprTokens.T.String:
            {
                // Adjacent string literals concatenate, as in Python.
                string s = (string)t.Value!;
                while (toks.Peek().Type == ExprTokens.T.String) s += (string)toks.Next().Value!;
                return new Literal(s);
            }
            case ExprTokens.T.Number:
                return new Literal(t.Value);
            case ExprTokens.T.Name:
                return t.Text switch
                {
                    "true" or "True" => new Literal(true),
                    "false" or "False" => new Literal(false),
                    "none" or "None" => new Literal(null),
                    _ => new Name(t.Text),
                };
            case ExprTokens.T.Op when t.Text == "(":
            {
                var e = ParseExpression(toks);
                if (toks.TakeOp(","))
                {
                    var items = new List<Expr> { e };
                    while (!toks.IsOp(")")) { items.Add(ParseExpression(toks)); if (!toks.TakeOp(",")) break; }
                    e = new ListExpr(items);
                }
                toks.ExpectOp(")");
                return e;
            }
            case ExprTokens.T.Op when t.Text == "[":
            {
                var items = new List<Expr>();
                while (!toks.TakeOp("]"))
                {
                    items.Add(ParseExpression(toks));
                    if (!toks.TakeOp(",")) { toks.ExpectOp("]"); break; }
                }
                return new ListExpr(items);
            }
            case ExprTokens.T.Op when t.Text == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!toks.TakeOp("}"))
                {
                    var key = ParseExpression(toks);
                    toks.ExpectOp(":");
                    items.Add((key, ParseExpression(toks)));
                    if (!toks.TakeOp(",")) { toks.ExpectOp("}"); break; }
                }
                return new DictExpr(items);
            }
            default:
                throw new ChatTemplateException($"Unexpected '{t.Text}' in '{toks.Source}'.");
        }
    }
}

/// <summary>Evaluates the node tree with Python/Jinja value semantics.</summary>
internal sealed class Interpreter
{
    private readonly List<Dictionary<string, object?>> _scopes = new();

    public Interpreter(IReadOnlyDictionary<string, object?> globals)
    {
        _scopes.Add(new Dictionary<string, object?>(globals, StringComparer.Ordinal));
    }

    public void Execute(List<Node> nodes, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode t:
                    output.Append(t.Text);
                    break;
                case OutputNode o:
                    output.Append(ToStr(Eval(o.Value)));
                    break;
                case IfNode i:
                {
                    bool done = false;
                    foreach (var (test, body) in i.Branches)
                    {
                        if (Truthy(Eval(test)))
                        {
                            Execute(body, output);
                            done = true;
                            break;
                        }
                    }
                    if (!done && i.Else is not null) Execute(i.Else, output);
                    break;
                }
                case ForNode f:
                    ExecuteFor(f, output);
                    break;
                case SetNode s:
                {
                    object? value = Eval(s.Value);
                    if (s.Attribute is null) _scopes[^1][s.Name] = value;
                    else if (Lookup(s.Name) is Namespace ns) ns[s.Attribute] = value;
                    else throw new ChatTemplateException($"'{{% set {s.Name}.{s.Attribute} %}}' needs '{s.Name}' to be a namespace().");
                    break;
                }
            }
        }
    }

    private void ExecuteFor(ForNode f, StringBuilder output)
    {
        var items = new List<object?>();
        foreach (var item in Iterate(Eval(f.Iterable)))
        {
            if (f.Filter is not null)
            {
                _scopes.Add(new Dictionary<string, object?>(StringComparer.Ordinal));
                Bind(f.Targets, item);
                bool keep = Truthy(Eval(f.Filter));
                _scopes.RemoveAt(_scopes.Count - 1);
                if (!keep) continue;
            }
            items.Add(item);
        }
        if (items.Count == 0)
        {
            if (f.Else is not null) Execute(f.Else, output);
            return;
        }
        for (int k = 0; k < items.Count; k++)
        {
            // Each iteration has its own scope: {% set %} inside a loop does not leak out (Jinja semantics).
            _scopes.Add(new Dictionary<string, object?>(StringComparer.Ordinal));
            Bind(f.Targets, items[k]);
            _scopes[^1]["loop"] = new Dictionary<string, object?>
            {
                ["index0"] = (long)k,
                ["index"] = (long)k + 1,
                ["revindex0"] = (long)(items.Count - k - 1),
                ["revindex"] = (long)(items.Count - k),
                ["first"] = k == 0,
                ["last"] = k == items.Count - 1,
                ["length"] = (long)items.Count,
                ["previtem"] = k > 0 ? items[k - 1] : Undefined.Value,
                ["nextitem"] = k + 1 < items.Count ? items[k + 1] : Undefined.Value,
            };
            Execute(f.Body, output);
            _scopes.RemoveAt(_scopes.Count - 1);
        }
    }

    private void Bind(List<string> targets, object? item)
    {
        if (targets.Count == 1)
        {
            _scopes[^1][targets[0]] = item;
            return;
        }
        var parts = Iterate(item).ToList();
        if (parts.Count != targets.Count)
            throw new ChatTemplateException($"Cannot unpack {parts.Count} values into {targets.Count} loop variables.");
        for (int i = 0; i < targets.Count; i++) _scopes[^1][targets[i]] = parts[i];
    }

    private object? Lookup(string name)
    {
        for (int i = _scopes.Count - 1; i >= 0; i--)
            if (_scopes[i].TryGetValue(name, out var v)) return v;
        return Undefined.Value;
    }

    private object? Eval(Expr e)
    {
        switch (e)
        {
            case Literal l: return l.Value;
            case Name n: return Lookup(n.Id);
            case ListExpr l: return l.Items.Select(Eval).ToList();
            case DictExpr d:
            {
                var dict = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in d.Items) dict[ToStr(Eval(k))] = Eval(v);
                return dict;
            }
            case GetAttr g: return GetAttribute(Eval(g.Target), g.Attribute);
            case GetItem g: return GetIndex(Eval(g.Target), Eval(g.Index));
            case Slice s: return SliceOf(Eval(s.Target), s.Start is null ? null : Eval(s.Start), s.Stop is null ? null : Eval(s.Stop), s.Step is null ? null : Eval(s.Step));
            case Call c: return Invoke(c);
            case FilterExpr f: return ApplyFilter(f);
            case TestExpr t: return ApplyTest(t) != t.Negated;
            case Unary u:
            {
                object? v = Eval(u.Operand);
                return u.Op == "not" ? !Truthy(v) : v switch
                {
                    long x => (object)(-x),
                    double x => -x,
                    _ => throw new ChatTemplateException($"Cannot negate {TypeName(v)}."),
                };
            }
            case Binary b: return EvalBinary(b);
            case Conditional c:
                return Truthy(Eval(c.Test)) ? Eval(c.IfTrue) : c.IfFalse is null ? Undefined.Value : Eval(c.IfFalse);
            default:
                throw new ChatTemplateException($"Unknown expression {e.GetType().Name}.");
        }
    }

    private object? EvalBinary(Binary b)
    {
        if (b.Op == "and")
        {
            object? l = Eval(b.Left);
            return Truthy(l) ? Eval(b.Right) : l;
        }
        if (b.Op == "or")
        {
            object? l = Eval(b.Left);
            return Truthy(l) ? l : Eval(b.Right);
        }
        object? left = Eval(b.Left), right = Eval(b.Right);
        switch (b.Op)
        {
            case "~": return ToStr(left) + ToStr(right);
            case "+":
                if (left is string || right is string)
                {
                    if ((left is string or Undefined) && (right is string or Undefined)) return ToStr(left) + ToStr(right);
                    throw new ChatTemplateException($"Cannot add {TypeName(left)} and {TypeName(right)}.");
                }
                if (left is List<object?> la && right is List<object?> lb) return la.Concat(lb).ToList();
                return Arithmetic(b.Op, left, right);
            case "-": case "*": case "/": case "//": case "%":
                if (b.Op == "*" && left is string s && right is long times) return string.Concat(Enumerable.Repeat(s, (int)Math.Max(0, times)));
                return Arithmetic(b.Op, left, right);
            case "==": return ValueEquals(left, right);
            case "!=": return !ValueEquals(left, right);
            case "<": return Compare(left, right) < 0;
            case "<=": return Compare(left, right) <= 0;
            case ">": return Compare(left, right) > 0;
            case ">=": return Compare(left, right) >= 0;
            case "in": return Contains(right, left);
            case "not in": return !Contains(right, left);
            default: throw new ChatTemplateException($"Unknown operator '{b.Op}'.");
        }
    }

    private static object Arithmetic(string op, object? a, object? b)
    {
        if (a is bool ba) a = ba ? 1L : 0L;
        if (b is bool bb) b = bb ? 1L : 0L;
        if (a is long x && b is long y)
        {
            return op switch
            {
                "+" => (object)(x + y), // object arms: a long/double switch would widen every result to double
                "-" => x - y,
                "*" => x * y,
                "/" => (double)x / y,
                "//" => y == 0 ? throw new ChatTemplateException("Division by zero.") : (long)Math.Floor((double)x / y),
                "%" => y == 0 ? throw new ChatTemplateException("Modulo by zero.") : ((x % y) + y) % y,
                _ => throw new ChatTemplateException($"Unknown operator '{op}'."),
            };
        }
        if (a is long or double && b is long or double)
        {
            double p = Convert.ToDouble(a, CultureInfo.InvariantCulture), q = Convert.ToDouble(b, CultureInfo.InvariantCulture);
            return op switch
            {
                "+" => p + q,
                "-" => p - q,
                "*" => p * q,
                "/" => p / q,
                "//" => Math.Floor(p / q),
                "%" => p - q * Math.Floor(p / q),
                _ => throw new ChatTemplateException($"Unknown operator '{op}'."),
            };
        }
        throw new ChatTemplateException($"Cannot apply '{op}' to {TypeName(a)} and {TypeName(b)}.");
    }

    private object? Invoke(Call c)
    {
        var args = c.Args.Select(Eval).ToList();
        var kwargs = c.Kwargs.ToDictionary(k => k.Name, k => Eval(k.Value));
        if (c.Callee is Name n && Lookup(n.Id) is Undefined)
        {
            switch (n.Id)
            {
                case "raise_exception":
                    throw new ChatTemplateException(args.Count > 0 ? ToStr(args[0]) : "raise_exception() called by the chat template.");
                case "range":
                {
                    long start = 0, stop, step = 1;
                    if (args.Count == 1) stop = AsLong(args[0]);
                    else { start = AsLong(args[0]); stop = AsLong(args[1]); if (args.Count > 2) step = AsLong(args[2]); }
                    var list = new List<object?>();
                    for (long i = start; step > 0 ? i < stop : i > stop; i += step) list.Add(i);
                    return list;
                }
                case "namespace":
                {
                    var ns = new Namespace();
                    foreach (var (k, v) in kwargs) ns[k] = v;
                    return ns;
                }
            }
            throw new ChatTemplateException($"Unknown function '{n.Id}'.");
        }
        if (c.Callee is GetAttr g) return CallMethod(Eval(g.Target), g.Attribute, args);
        throw new ChatTemplateException("Only functions and methods can be called.");
    }

    private static object? CallMethod(object? target, string method, List<object?> args)
    {
        switch (target)
        {
            case string s:
                return method switch
                {
                    "strip" => args.Count > 0 ? s.Trim(ToStr(args[0]).ToCharArray()) : s.Trim(),
                    "lstrip" => args.Count > 0 ? s.TrimStart(ToStr(args[0]).ToCharArray()) : s.TrimStart(),
                    "rstrip" => args.Count > 0 ? s.TrimEnd(ToStr(args[0]).ToCharArray()) : s.TrimEnd(),
                    "upper" => s.ToUpperInvariant(),
                    "lower" => s.ToLowerInvariant(),
                    "title" => Title(s),
                    "capitalize" => Capitalize(s),
                    "startswith" => s.StartsWith(ToStr(args[0]), StringComparison.Ordinal),
                    "endswith" => s.EndsWith(ToStr(args[0]), StringComparison.Ordinal),
                    "replace" => s.Replace(ToStr(args[0]), ToStr(args[1]), StringComparison.Ordinal),
                    "split" => (args.Count > 0 && args[0] is string sep
                        ? s.Split(sep)
                        : s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).Select(x => (object?)x).ToList(),
                    "format" => throw new ChatTemplateException("str.format is not supported."),
                    _ => throw new ChatTemplateException($"Unknown string method '{method}'."),
                };
            case Dictionary<string, object?> d:
                return method switch
                {
                    "get" => d.TryGetValue(ToStr(args[0]), out var v) ? v : args.Count > 1 ? args[1] : null,
                    "items" => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList(),
                    "keys" => d.Keys.Select(k => (object?)k).ToList(),
                    "values" => d.Values.ToList(),
                    _ => throw new ChatTemplateException($"Unknown dict method '{method}'."),
                };
            case List<object?> l when method == "index":
                return (long)l.FindIndex(x => ValueEquals(x, args[0]));
            default:
                throw new ChatTemplateException($"{TypeName(target)} has no method '{method}'.");
        }
    }

    private object? ApplyFilter(FilterExpr f)
    {
        object? v = Eval(f.Target);
        var args = f.Args.Select(Eval).ToList();
        switch (f.Filter)
        {
            case "trim": return ToStr(v).Trim();
            case "length":
            case "count":
                return v switch
                {
                    string s => CodePointCount(s), // Python len(): code points
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    _ => throw new ChatTemplateException($"{TypeName(v)} has no length."),
                };
            case "default":
            case "d":
            {
                bool boolean = args.Count > 1 && Truthy(args[1]) || f.Kwargs.Any(k => k.Name == "boolean" && Truthy(Eval(k.Value)));
                bool useDefault = v is Undefined || (boolean && !Truthy(v));
                return useDefault ? (args.Count > 0 ? args[0] : "") : v;
            }
            case "upper": return ToStr(v).ToUpperInvariant();
            case "lower": return ToStr(v).ToLowerInvariant();
            case "capitalize": return Capitalize(ToStr(v));
            case "title": return Title(ToStr(v));
            case "string": return ToStr(v);
            case "int":
                return v switch
                {
                    long x => (object)x,
                    double x => (long)x,
                    string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) => p,
                    _ => args.Count > 0 ? args[0] : 0L,
                };
            case "float":
                return v switch
                {
                    long x => (object)(double)x,
                    double x => x,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
                    _ => 0.0,
                };
            case "join": return string.Join(args.Count > 0 ? ToStr(args[0]) : "", Iterate(v).Select(ToStr));
            case "first": return Iterate(v).FirstOrDefault(Undefined.Value);
            case "last": return Iterate(v).LastOrDefault(Undefined.Value);
            case "list": return Iterate(v).ToList();
            case "reverse": return v is string rs ? new string(rs.Reverse().ToArray()) : Iterate(v).Reverse().ToList();
            case "replace": return ToStr(v).Replace(ToStr(args[0]), ToStr(args[1]), StringComparison.Ordinal);
            case "items": return CallMethod(v, "items", []);
            case "tojson": return ToJson(v);
            default: throw new ChatTemplateException($"Filter '{f.Filter}' is not supported.");
        }
    }

    private bool ApplyTest(TestExpr t)
    {
        object? v = Eval(t.Target);
        return t.Test switch
        {
            "defined" => v is not Undefined,
            "undefined" => v is Undefined,
            "none" => v is null,
            "string" => v is string,
            "number" => v is long or double,
            "integer" => v is long,
            "float" => v is double,
            "boolean" => v is bool,
            "true" => v is true,
            "false" => v is false,
            "mapping" => v is Dictionary<string, object?>,
            "sequence" or "iterable" => v is List<object?> or string or Dictionary<string, object?>,
            "even" => AsLong(v) % 2 == 0,
            "odd" => AsLong(v) % 2 != 0,
            "equalto" or "eq" or "sameas" => ValueEquals(v, Eval(t.Args[0])),
            _ => throw new ChatTemplateException($"Test '{t.Test}' is not supported."),
        };
    }

    private static object? GetAttribute(object? target, string name) => target switch
    {
        Dictionary<string, object?> d => d.TryGetValue(name, out var v) ? v : Undefined.Value,
        _ => Undefined.Value,
    };

    private static object? GetIndex(object? target, object? index)
    {
        switch (target)
        {
            case Dictionary<string, object?> d:
                return index is string k && d.TryGetValue(k, out var v) ? v : Undefined.Value;
            case List<object?> l when index is long i:
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : Undefined.Value;
            case string s when index is long i:
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : Undefined.Value;
            default:
                return Undefined.Value;
        }
    }

    private static object? SliceOf(object? target, object? start, object? stop, object? step)
    {
        List<object?> items = target is string s ? s.Select(c => (object?)c.ToString()).ToList() : Iterate(target).ToList();
        int n = items.Count;
        long st = step is null ? 1 : AsLong(step);
        if (st == 0) throw new ChatTemplateException("Slice step cannot be zero.");
        long Clamp(object? v, long dflt, long lo, long hi)
        {
            if (v is null) return dflt;
            long x = AsLong(v);
            if (x < 0) x += n;
            return Math.Clamp(x, lo, hi);
        }
        var result = new List<object?>();
        if (st > 0)
            for (long i = Clamp(start, 0, 0, n), end = Clamp(stop, n, 0, n); i < end; i += st) result.Add(items[(int)i]);
        else
            for (long i = Clamp(start, n - 1, -1, n - 1), end = Clamp(stop, -1, -1, n - 1); i > end; i += st) result.Add(items[(int)i]);
        return target is string ? string.Concat(result.Select(ToStr)) : result;
    }

    private static IEnumerable<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        string s => s.Select(c => (object?)c.ToString()),
        Dictionary<string, object?> d => d.Keys,
        Undefined or null => [],
        _ => throw new ChatTemplateException($"{TypeName(v)} is not iterable."),
    };

    private static bool Contains(object? container, object? item) => container switch
    {
        string s => s.Contains(ToStr(item), StringComparison.Ordinal),
        List<object?> l => l.Any(x => ValueEquals(x, item)),
        Dictionary<string, object?> d => item is string k && d.ContainsKey(k),
        _ => false,
    };

    internal static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long x => x != 0,
        double x => x != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        Dictionary<string, object?> d => d.Count > 0,
        _ => true,
    };

    private static bool ValueEquals(object? a, object? b)
    {
        if (a is Undefined) a = null;
        if (b is Undefined) b = null;
        if (a is long or double or bool && b is long or double or bool) return Convert.ToDouble(a, CultureInfo.InvariantCulture) == Convert.ToDouble(b, CultureInfo.InvariantCulture);
        if (a is List<object?> la && b is List<object?> lb) return la.Count == lb.Count && la.Zip(lb).All(p => ValueEquals(p.First, p.Second));
        return Equals(a, b);
    }

    private static int Compare(object? a, object? b)
    {
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (a is long or double && b is long or double)
            return Convert.ToDouble(a, CultureInfo.InvariantCulture).CompareTo(Convert.ToDouble(b, CultureInfo.InvariantCulture));
        throw new ChatTemplateException($"Cannot compare {TypeName(a)} with {TypeName(b)}.");
    }

    private static long AsLong(object? v) => v switch
    {
        long x => x,
        double x => (long)x,
        bool b => b ? 1 : 0,
        _ => throw new ChatTemplateException($"Expected an integer, got {TypeName(v)}."),
    };

    private static long CodePointCount(string s)
    {
        long n = 0;
        foreach (var _ in s.EnumerateRunes()) n++;
        return n;
    }

    /// <summary>Python's str() of a value, as Jinja prints it.</summary>
    internal static string ToStr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long x => x.ToString(CultureInfo.InvariantCulture),
        double x => double.IsInteger(x) && Math.Abs(x) < 1e16 ? x.ToString("0.0", CultureInfo.InvariantCulture) : x.ToString("R", CultureInfo.InvariantCulture),
        List<object?> l => "[" + string.Join(", ", l.Select(Repr)) + "]",
        Dictionary<string, object?> d => "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        _ => v.ToString() ?? "",
    };

    private static string Repr(object? v) => v is string s ? "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'" : ToStr(v);

    private static string ToJson(object? v) => JsonSerializer.Serialize(ToPlain(v));

    private static object? ToPlain(object? v) => v switch
    {
        Undefined => null,
        List<object?> l => l.Select(ToPlain).ToList(),
        Dictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => ToPlain(kv.Value)),
        _ => v,
    };

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            sb.Append(start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = !char.IsLetterOrDigit(c);
        }
        return sb.ToString();
    }

    private static string TypeName(object? v) => v switch
    {
        null => "None",
        Undefined => "undefined",
        string => "a string",
        long => "an integer",
        double => "a float",
        bool => "a boolean",
        List<object?> => "a list",
        Dictionary<string, object?> => "a dict",
        _ => v.GetType().Name,
    };
}
