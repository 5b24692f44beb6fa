// Remote command (RPC_CLI_CLI_CALL) request and service.

namespace cpp dsn.dist.cmd
namespace go cmd

struct command {
    1: string       cmd;
    2: list<string> arguments;
}

service remoteCmdService {
    string callCommand(1: command cmd);
}
