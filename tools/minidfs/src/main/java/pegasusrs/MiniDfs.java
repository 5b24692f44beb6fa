// MiniDfs: a real HDFS on loopback for the HDFS block-service test.
//   run <port> <dir>   starts a MiniDFSCluster (one NameNode on the given RPC port, one DataNode)
//                      under <dir>, prints "READY <rpc port>" once it serves, runs until killed
//   ls <uri> <path>    lists <path> recursively through Hadoop's own client, one line per file:
//                      "<path relative to the argument> <size>"
//   cat <uri> <path>   copies one file to stdout
//   put <uri> <path>   replaces one file with stdin
package pegasusrs;

import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public final class MiniDfs {
  public static void main(String[] args) throws Exception {
    switch (args[0]) {
      case "run":
        run(Integer.parseInt(args[1]), new File(args[2]));
        break;
      case "ls":
        ls(args[1], args[2]);
        break;
      case "cat":
        cat(args[1], args[2]);
        break;
      case "put":
        put(args[1], args[2]);
        break;
      default:
        throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  private static void run(int port, File base) throws Exception {
    Configuration conf = new Configuration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.getAbsolutePath());
    conf.set("dfs.replication", "1");
    conf.set("dfs.namenode.safemode.extension", "0");
    conf.set("dfs.permissions.enabled", "false");
    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf)
            .nameNodePort(port)
            .nameNodeHttpPort(0)
            .numDataNodes(1)
            .format(true)
            .build();
    cluster.waitActive();
    System.out.println("READY " + cluster.getNameNodePort());
    System.out.flush();
    Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
    Thread.currentThread().join();
  }

  private static void ls(String uri, String path) throws Exception {
    FileSystem fs = FileSystem.get(new URI(uri), new Configuration());
    Path base = fs.makeQualified(new Path(path));
    String prefix = base.toUri().getPath();
    RemoteIterator<LocatedFileStatus> it = fs.listFiles(base, true);
    while (it.hasNext()) {
      LocatedFileStatus st = it.next();
      String p = st.getPath().toUri().getPath();
      System.out.println(p.substring(prefix.length()).replaceFirst("^/", "") + " " + st.getLen());
    }
  }

  private static void cat(String uri, String path) throws Exception {
    FileSystem fs = FileSystem.get(new URI(uri), new Configuration());
    try (InputStream in = fs.open(new Path(path))) {
      in.transferTo(System.out);
    }
    System.out.flush();
  }

  private static void put(String uri, String path) throws Exception {
    FileSystem fs = FileSystem.get(new URI(uri), new Configuration());
    try (OutputStream out = fs.create(new Path(path), true)) {
      System.in.transferTo(out);
    }
  }
}
