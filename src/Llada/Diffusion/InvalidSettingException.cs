namespace Llada.Diffusion;

/// <summary>
/// A reverse-process setting (or request field) with a bad value. <see cref="ArgumentException.ParamName"/> names the
/// setting as the reference <c>generate()</c> and the server's JSON do (gen_length, steps, block_length, ...), so a
/// front end can point at it; <see cref="Message"/> is the sentence alone, without .NET's "(Parameter '...')" suffix,
/// because it is shown to users as it is.
/// </summary>
public sealed class InvalidSettingException(string setting, string message) : ArgumentException(message, setting)
{
    /// <inheritdoc />
    public override string Message { get; } = message;
}
