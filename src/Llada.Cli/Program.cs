using Llada.Cli;

return await LladaCli.RunAsync(args);
