// The lunlink CLI run from source (tsx), for tests that start it as a process in a namespace:
//   ip netns exec NS node --import=tsx test/helpers/lunlink-cli.ts mirror serve ...
import { main } from "../../lib/cli/main.ts";

process.exitCode = await main(process.argv.slice(2));
