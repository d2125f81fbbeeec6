// LoopbackLauncher starts DynamoDB Local bound to one host address (127.0.0.1
// unless -Dcoiflow.bindHost says otherwise). DynamoDB Local has no bind flag and
// listens on every interface when run with `java -jar`; this launcher builds the
// same server from the same command-line flags, sets the host of its Jetty
// connectors, then starts it. coiflow compiles it at run time against the
// installed DynamoDBLocal.jar (see launcher.go); the jar itself is never
// committed.
import java.lang.reflect.Field;

import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackLauncher {
    private LoopbackLauncher() {}

    public static void main(String[] args) throws Exception {
        String host = System.getProperty("coiflow.bindHost", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);

        Field f = DynamoDBProxyServer.class.getDeclaredField("server");
        f.setAccessible(true);
        Server server = (Server) f.get(proxy);

        int bound = 0;
        for (Connector c : server.getConnectors()) {
            if (c instanceof ServerConnector) {
                ((ServerConnector) c).setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            System.err.println("coiflow LoopbackLauncher: no Jetty ServerConnector found; refusing to listen on all interfaces");
            System.exit(2);
        }

        proxy.start();
        for (Connector c : server.getConnectors()) {
            if (c instanceof ServerConnector) {
                ServerConnector sc = (ServerConnector) c;
                System.out.println("coiflow LoopbackLauncher: DynamoDB Local listening on " + sc.getHost() + ":" + sc.getLocalPort());
            }
        }
        proxy.join();
    }
}
