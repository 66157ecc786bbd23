using System.Text;
using System.Text.Json;
using Llada.Server;
using Llada.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Hosting;

namespace Llada.Tests.Serving;

/// <summary>The server in-process (TestServer) over a given generator.</summary>
public sealed class ServerFactory(TextGenerator generator, LladaServerOptions options) : WebApplicationFactory<ServerFactory>
{
    public LladaServer Llada => Services.GetService(typeof(LladaServer)) as LladaServer ?? throw new InvalidOperationException();

    protected override IHostBuilder CreateHostBuilder() =>
        Host.CreateDefaultBuilder().ConfigureWebHostDefaults(web => web
            .ConfigureServices(s => LladaServer.AddServices(s, generator, options))
            .Configure(LladaServer.Configure));

    // The factory's entry point is the test assembly, which has no project folder of its own: serve from the output folder.
    protected override IHost CreateHost(IHostBuilder builder) => base.CreateHost(builder.UseContentRoot(AppContext.BaseDirectory));
}

/// <summary>A tiny synthetic LLaDA with the byte tokenizer on disk, loaded once for the server tests.</summary>
public sealed class SyntheticModelFixture : IDisposable
{
    public const string ModelId = "llada-test";
    private readonly string _dir;

    public SyntheticModelFixture()
    {
        _dir = Directory.CreateTempSubdirectory("llada-serve-").FullName;
        ServingTestModels.WriteSyntheticModel(_dir);
        Generator = TextGenerator.Load(_dir, ModelId);
    }

    public TextGenerator Generator { get; }

    public void Dispose()
    {
        Generator.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}

internal static class Http
{
    public static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    public static StringContent Body(object payload) => Body(JsonSerializer.Serialize(payload));

    public static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;

    /// <summary>The data payloads of a Server-Sent Events body.</summary>
    public static List<string> Events(string body) =>
        body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e =>
        {
            Assert.StartsWith("data: ", e);
            return e["data: ".Length..];
        }).ToList();

    public static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the server");
            await Task.Delay(5, TestContext.Current.CancellationToken);
        }
    }
}
